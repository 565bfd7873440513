#pragma once
/// \file
/// Quantizer sharing rules: several layers use one TensorQuantizer, so that the inputs of a
/// concatenation or a residual addition get one scale and TensorRT can fuse them (the
/// `apply_custom_rules_to_quantizer` step of NVIDIA's TensorRT QAT scripts).
///
/// Example:
/// \code
///   // The shortcut and the block output of a residual add share the next conv's input scale.
///   torchquant::utils::share_quantizer(*model, "layer2.0.conv1._input_quantizer",
///                                      {"layer1.1.add._input0_quantizer",
///                                       "layer1.1.add._input1_quantizer"});
/// \endcode

#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace torchquant {
namespace utils {

/// Makes each quantizer named in `targets` (dotted names) the very quantizer named `source`:
/// calibration then sees every input and gives them one amax. Owners of the targets must be quant
/// layers, QuantAdd or QuantConcat (modules implementing nn::QuantizerOwner). Unknown names are
/// errors listing what exists; nothing changes unless every target can be rebound.
void share_quantizer(torch::nn::Module& model, const std::string& source,
                     const std::vector<std::string>& targets);

}  // namespace utils
}  // namespace torchquant
