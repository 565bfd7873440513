#pragma once
/// \file
/// QuantAdd and QuantConcat: quantizers on the inputs of residual additions and concatenations,
/// so that TensorRT sees Q/DQ pairs there and can fuse them (the `QuantAdd` of NVIDIA's TensorRT
/// QAT samples).
///
/// Example:
/// \code
///   torchquant::nn::QuantAdd add;
///   at::Tensor out = add(block(x), shortcut(x));   // both inputs quantized
/// \endcode

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <iosfwd>
#include <vector>

#include "torchquant/nn/modules/quant_layer.h"
#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace nn {

/// Options of QuantAdd.
struct QuantAddOptions {
  /// Descriptor of the input quantizers.
  TORCH_ARG(QuantDescriptor, quant_desc_input) = QUANT_DESC_8BIT_PER_TENSOR();
  /// Quantize the second input too (false: only the first, e.g. when the shortcut is already
  /// quantized by the layer that produced it).
  TORCH_ARG(bool, quantize_both) = true;
};

/// `forward(a, b) = _input0_quantizer(a) + _input1_quantizer(b)` (b unquantized unless
/// quantize_both); plain `a + b` while quant_modules are deactivated.
class QuantAddImpl : public torch::nn::Cloneable<QuantAddImpl>, public QuantizerOwner {
 public:
  explicit QuantAddImpl(QuantAddOptions options = {});
  void reset() override;
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b);
  bool rebind_quantizer(const std::string& name,
                        const std::shared_ptr<torch::nn::Module>& quantizer) override;
  void pretty_print(std::ostream& stream) const override;

  QuantAddOptions options;
  TensorQuantizer _input0_quantizer{nullptr};
  /// Null unless quantize_both.
  TensorQuantizer _input1_quantizer{nullptr};
};
TORCH_MODULE(QuantAdd);

/// Options of QuantConcat.
struct QuantConcatOptions {
  /* implicit */ QuantConcatOptions(int64_t dim = 1) : dim_(dim) {}
  /// The concatenation dim.
  TORCH_ARG(int64_t, dim);
  /// Descriptor of the (shared) input quantizer.
  TORCH_ARG(QuantDescriptor, quant_desc_input) = QUANT_DESC_8BIT_PER_TENSOR();
};

/// `forward(inputs) = cat([_input_quantizer(x) for x in inputs], dim)`. One quantizer for every
/// input, so that calibration gives them one amax: the concatenation then needs no requantization
/// in TensorRT.
class QuantConcatImpl : public torch::nn::Cloneable<QuantConcatImpl>, public QuantizerOwner {
 public:
  explicit QuantConcatImpl(QuantConcatOptions options = {});
  void reset() override;
  at::Tensor forward(const std::vector<at::Tensor>& inputs);
  bool rebind_quantizer(const std::string& name,
                        const std::shared_ptr<torch::nn::Module>& quantizer) override;
  void pretty_print(std::ostream& stream) const override;

  QuantConcatOptions options;
  TensorQuantizer _input_quantizer{nullptr};
};
TORCH_MODULE(QuantConcat);

}  // namespace nn
}  // namespace torchquant
