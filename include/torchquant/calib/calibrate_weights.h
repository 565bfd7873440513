#pragma once
/// \file
/// calibrate_weights: sets the weight amax of every quant layer of a model from its weights, as
/// `pytorch_quantization.calib.calibrate_weights`.

#include <torch/nn/module.h>

#include <cstdint>
#include <string>

namespace torchquant {
namespace calib {

/// For every module with a `_weight_quantizer` and a `weight` (QuantConv*, QuantConvTranspose*,
/// QuantLinear, and user modules following the same names), computes amax from |weight| and
/// stores it in the weight quantizer: "max" (max |w|), "percentile" or "mse" (on a histogram of
/// |w| over [0, max |w|] with `num_bins` bins, NumPy's histogram as upstream). `perchannel` uses
/// the weight quantizer's axis (a quantizer without an axis is calibrated per tensor). Returns the
/// number of quantizers calibrated. Differences from upstream: num_bins is honoured per tensor
/// too (upstream: always 2048), and "max" works per tensor (upstream raises ValueError).
///
/// \code
///   torchquant::calib::calibrate_weights(*model, "percentile", /*perchannel=*/true, 99.99);
/// \endcode
int64_t calibrate_weights(torch::nn::Module& model, const std::string& method = "percentile",
                          bool perchannel = true, double percentile = 99.99,
                          int64_t num_bins = 2048);

}  // namespace calib
}  // namespace torchquant
