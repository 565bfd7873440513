#pragma once
/// \file
/// QuantLinear: torch::nn::Linear with an input quantizer (8 bit per tensor) and a weight
/// quantizer (8 bit per row); the bias is not quantized.
///
/// Example:
/// \code
///   torchquant::nn::QuantLinear fc(torch::nn::LinearOptions(128, 10));
///   at::Tensor logits = fc(torch::randn({32, 128}));
/// \endcode

#include <ATen/ops/linear.h>
#include <torch/nn/modules/linear.h>

#include "torchquant/nn/modules/quant_layer_base.h"

namespace torchquant {
namespace nn {

/// `forward(x) = linear(input_quantizer(x), weight_quantizer(weight), bias)`.
class QuantLinearImpl : public QuantWeightLayer<QuantLinearImpl, torch::nn::Linear> {
 public:
  static constexpr const char* kName = "torchquant::nn::QuantLinear";
  explicit QuantLinearImpl(torch::nn::LinearOptions options, QuantLayerOptions quant = {},
                           torch::nn::Linear twin = nullptr)
      : QuantWeightLayer(std::move(options), std::move(quant), std::move(twin)) {
    reset();
  }
  at::Tensor forward(const at::Tensor& input) {
    auto [x, w] = quantized_operands(input);
    return at::linear(x, w, bias);
  }
  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  static QuantDescriptor initial_quant_desc_weight() {
    return QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW();
  }
};
TORCH_MODULE(QuantLinear);

}  // namespace nn
}  // namespace torchquant
