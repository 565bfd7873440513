#pragma once
/// \file
/// Quantized pooling and InstanceNorm: the torch::nn layer applied to the quantized input
/// (input quantizer only, 8 bit per tensor by default).
///
/// Example:
/// \code
///   torchquant::nn::QuantMaxPool2d pool(torch::nn::MaxPool2dOptions(3).stride(2));
///   at::Tensor y = pool(torch::randn({1, 8, 16, 16}));
/// \endcode

#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/pooling.h>

#include "torchquant/nn/modules/quant_layer_base.h"

namespace torchquant {
namespace nn {

#define TORCHQUANT_QUANT_INPUT_LAYER(Name, Float)                                            \
  class Name##Impl : public QuantInputLayer<Name##Impl, Float> {                             \
   public:                                                                                   \
    static constexpr const char* kName = "torchquant::nn::" #Name;                           \
    explicit Name##Impl(Options options, QuantLayerOptions quant = {}, Float twin = nullptr) \
        : QuantInputLayer(std::move(options), std::move(quant), std::move(twin)) {           \
      reset();                                                                               \
    }                                                                                        \
  };                                                                                         \
  TORCH_MODULE(Name)

TORCHQUANT_QUANT_INPUT_LAYER(QuantMaxPool1d, torch::nn::MaxPool1d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantMaxPool2d, torch::nn::MaxPool2d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantMaxPool3d, torch::nn::MaxPool3d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAvgPool1d, torch::nn::AvgPool1d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAvgPool2d, torch::nn::AvgPool2d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAvgPool3d, torch::nn::AvgPool3d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAdaptiveAvgPool1d, torch::nn::AdaptiveAvgPool1d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAdaptiveAvgPool2d, torch::nn::AdaptiveAvgPool2d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantAdaptiveAvgPool3d, torch::nn::AdaptiveAvgPool3d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantInstanceNorm1d, torch::nn::InstanceNorm1d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantInstanceNorm2d, torch::nn::InstanceNorm2d);
TORCHQUANT_QUANT_INPUT_LAYER(QuantInstanceNorm3d, torch::nn::InstanceNorm3d);

}  // namespace nn
}  // namespace torchquant
