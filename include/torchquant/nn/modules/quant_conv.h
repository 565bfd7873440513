#pragma once
/// \file
/// QuantConv1d/2d/3d and QuantConvTranspose1d/2d/3d: the torch::nn layers with an input quantizer
/// (default 8 bit per tensor) and a weight quantizer (default 8 bit per output channel; per
/// channel of axis 0 for ConvTranspose, see docs/quantizer.md). The bias is not quantized.
///
/// Example:
/// \code
///   torchquant::nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 16, 3).padding(1));
///   at::Tensor y = conv(torch::randn({8, 3, 32, 32}));
/// \endcode

#include <torch/nn/modules/conv.h>

#include <vector>

#include "torchquant/nn/modules/quant_layer_base.h"

namespace torchquant {
namespace nn {

/// Process-wide switch (default on) of QuantConv1d/2d/3d's fused training path: when gradients
/// are needed and both quantizers do plain fake quantization, forward runs the convolution of
/// the quantized operands as one autograd node that keeps only the layer's input and weight and
/// recomputes the quantization and its straight-through masks in backward. Outputs and gradients
/// are bit-identical to the unfused graph; the memory of a training step drops by the quantized
/// copies and masks of every activation (docs/benchmarks.md). Without gradients on the CPU the
/// same switch quantizes the layer's input into the buffer below instead of a fresh tensor
/// (outputs bit-identical). Off: every quantizer records its own autograd node, as upstream.
///
/// \code
///   torchquant::nn::set_fused_quant_conv(false);  // e.g. to compare against the unfused graph
/// \endcode
void set_fused_quant_conv(bool enabled);
bool fused_quant_conv();

/// On the CPU the fused path quantizes each layer's input into a buffer kept by the calling
/// thread and reused by every layer and step (the quantized input lives only during the
/// convolution), so a training step or an inference forward allocates no activation-sized tensor
/// beyond the float model's. The buffers hold the largest quantized convolution input seen (plus
/// its mask, 1/32 of that); this frees the calling thread's buffers, e.g. after training.
///
/// \code
///   train(model);
///   torchquant::nn::release_fused_quant_conv_buffers();
/// \endcode
void release_fused_quant_conv_buffers();

namespace detail {

/// Convolution with torch::nn's padding semantics ('same'/'valid', and reflect / replicate /
/// circular padding applied before a zero-padding convolution), for D = 1, 2, 3.
template <size_t D>
at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                        const torch::nn::ConvOptions<D>& options);

/// QuantConvNd's fused path (see set_fused_quant_conv): the convolution of the quantized operands
/// as one autograd node, or without gradients on the CPU of the input quantized into the thread's
/// buffer; nullopt when the layer must take the unfused path (no gradient needed on another
/// device, non-zero padding mode, 'same'/'valid' padding, a quantizer that is not plain fake
/// quantization, fusion switched off).
template <size_t D>
c10::optional<at::Tensor> fused_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                                             const at::Tensor& bias,
                                             const torch::nn::ConvOptions<D>& options,
                                             const TensorQuantizerImpl& input_quantizer,
                                             const TensorQuantizerImpl& weight_quantizer);

/// Transposed convolution, output_padding derived from `output_size` as torch::nn does.
template <size_t D>
at::Tensor conv_transpose_forward(const at::Tensor& input, const at::Tensor& weight,
                                  const at::Tensor& bias,
                                  const torch::nn::ConvTransposeOptions<D>& options,
                                  const c10::optional<at::IntArrayRef>& output_size,
                                  const char* name);

}  // namespace detail

/// Quantized ConvNd: `forward(x) = conv(input_quantizer(x), weight_quantizer(weight)) + bias`.
template <size_t D, typename Derived, typename FloatHolder>
class QuantConvNdImpl : public QuantWeightLayer<Derived, FloatHolder, torch::nn::ConvOptions<D>> {
 public:
  using Base = QuantWeightLayer<Derived, FloatHolder, torch::nn::ConvOptions<D>>;
  explicit QuantConvNdImpl(torch::nn::ConvOptions<D> options, QuantLayerOptions quant = {},
                           FloatHolder twin = nullptr)
      : Base(std::move(options), std::move(quant), std::move(twin)) {
    this->reset();
  }

  static torch::nn::ConvOptions<D> options_from(const typename FloatHolder::Impl& conv) {
    const auto& o = conv.options;
    return torch::nn::ConvOptions<D>(o.in_channels(), o.out_channels(), o.kernel_size())
        .stride(o.stride())
        .padding(o.padding())
        .dilation(o.dilation())
        .groups(o.groups())
        .bias(o.bias())
        .padding_mode(o.padding_mode());
  }

  at::Tensor forward(const at::Tensor& input) {
    if (auto y = detail::fused_conv_forward<D>(input, this->weight, this->bias, this->options,
                                               *this->_input_quantizer, *this->_weight_quantizer)) {
      return *y;
    }
    auto [x, w] = this->quantized_operands(input);
    return detail::conv_forward<D>(x, w, this->bias, this->options);
  }

  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  static QuantDescriptor initial_quant_desc_weight() {
    return QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL();
  }
};

/// Quantized ConvTransposeNd; `forward(x, output_size)` as torch::nn::ConvTransposeNd.
template <size_t D, typename Derived, typename FloatHolder>
class QuantConvTransposeNdImpl
    : public QuantWeightLayer<Derived, FloatHolder, torch::nn::ConvTransposeOptions<D>> {
 public:
  using Base = QuantWeightLayer<Derived, FloatHolder, torch::nn::ConvTransposeOptions<D>>;
  explicit QuantConvTransposeNdImpl(torch::nn::ConvTransposeOptions<D> options,
                                    QuantLayerOptions quant = {}, FloatHolder twin = nullptr)
      : Base(std::move(options), std::move(quant), std::move(twin)) {
    this->reset();
  }

  static torch::nn::ConvTransposeOptions<D> options_from(const typename FloatHolder::Impl& conv) {
    const auto& o = conv.options;
    return torch::nn::ConvTransposeOptions<D>(o.in_channels(), o.out_channels(), o.kernel_size())
        .stride(o.stride())
        .padding(std::get<torch::ExpandingArray<D>>(o.padding()))
        .output_padding(o.output_padding())
        .dilation(o.dilation())
        .groups(o.groups())
        .bias(o.bias())
        .padding_mode(o.padding_mode());
  }

  at::Tensor forward(const at::Tensor& input,
                     const c10::optional<at::IntArrayRef>& output_size = c10::nullopt) {
    auto [x, w] = this->quantized_operands(input);
    return detail::conv_transpose_forward<D>(x, w, this->bias, this->options, output_size,
                                             Derived::kName);
  }

  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  static QuantDescriptor initial_quant_desc_weight() {
    return QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL();
  }

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(c10::optional<at::IntArrayRef>())})
};

#define TORCHQUANT_QUANT_LAYER(Name, BaseTemplate, Dim, Float)     \
  class Name##Impl : public BaseTemplate<Dim, Name##Impl, Float> { \
   public:                                                         \
    static constexpr const char* kName = "torchquant::nn::" #Name; \
    using BaseTemplate<Dim, Name##Impl, Float>::BaseTemplate;      \
  };                                                               \
  TORCH_MODULE(Name)

TORCHQUANT_QUANT_LAYER(QuantConv1d, QuantConvNdImpl, 1, torch::nn::Conv1d);
TORCHQUANT_QUANT_LAYER(QuantConv2d, QuantConvNdImpl, 2, torch::nn::Conv2d);
TORCHQUANT_QUANT_LAYER(QuantConv3d, QuantConvNdImpl, 3, torch::nn::Conv3d);
TORCHQUANT_QUANT_LAYER(QuantConvTranspose1d, QuantConvTransposeNdImpl, 1,
                       torch::nn::ConvTranspose1d);
TORCHQUANT_QUANT_LAYER(QuantConvTranspose2d, QuantConvTransposeNdImpl, 2,
                       torch::nn::ConvTranspose2d);
TORCHQUANT_QUANT_LAYER(QuantConvTranspose3d, QuantConvTransposeNdImpl, 3,
                       torch::nn::ConvTranspose3d);

}  // namespace nn
}  // namespace torchquant
