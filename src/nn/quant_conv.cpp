#include "torchquant/nn/modules/quant_conv.h"

#include <ATen/ATen.h>

namespace torchquant {
namespace nn {
namespace detail {
namespace {

// torch::nn's _reversed_padding_repeated_twice for a non-zeros padding mode.
template <size_t D>
std::vector<int64_t> reversed_padding_twice(const torch::nn::ConvOptions<D>& o) {
  std::vector<int64_t> pad(2 * D, 0);
  if (const auto* explicit_pad = std::get_if<torch::ExpandingArray<D>>(&o.padding())) {
    for (size_t i = 0; i < D; ++i) {
      pad[2 * i] = pad[2 * i + 1] = (**explicit_pad)[D - 1 - i];
    }
  } else if (std::holds_alternative<torch::enumtype::kSame>(o.padding())) {
    for (size_t i = 0; i < D; ++i) {  // torch::nn's order, kept for identical results
      const int64_t total = (*o.dilation())[i] * ((*o.kernel_size())[i] - 1);
      pad[2 * i] = total / 2;
      pad[2 * i + 1] = total - total / 2;
    }
  }
  return pad;
}

const char* pad_mode(const torch::nn::detail::conv_padding_mode_t& mode) {
  if (std::holds_alternative<torch::enumtype::kReflect>(mode)) return "reflect";
  if (std::holds_alternative<torch::enumtype::kReplicate>(mode)) return "replicate";
  return "circular";
}

}  // namespace

template <size_t D>
at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                        const torch::nn::ConvOptions<D>& o) {
  const std::vector<int64_t> zeros(D, 0);
  if (!std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode())) {
    const at::Tensor padded =
        at::pad(input, reversed_padding_twice<D>(o), pad_mode(o.padding_mode()));
    return at::convolution(padded, weight, bias, *o.stride(), zeros, *o.dilation(), false, zeros,
                           o.groups());
  }
  if (const auto* explicit_pad = std::get_if<torch::ExpandingArray<D>>(&o.padding())) {
    return at::convolution(input, weight, bias, *o.stride(), **explicit_pad, *o.dilation(), false,
                           zeros, o.groups());
  }
  const char* mode = std::holds_alternative<torch::enumtype::kSame>(o.padding()) ? "same" : "valid";
  return at::_convolution_mode(input, weight, bias, *o.stride(), mode, *o.dilation(), o.groups());
}

template <size_t D>
at::Tensor conv_transpose_forward(const at::Tensor& input, const at::Tensor& weight,
                                  const at::Tensor& bias,
                                  const torch::nn::ConvTransposeOptions<D>& o,
                                  const c10::optional<at::IntArrayRef>& output_size,
                                  const char* name) {
  TORCH_CHECK_VALUE(std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()), name,
                    ": only the zeros padding mode is supported for ConvTranspose (as torch::nn)");
  std::vector<int64_t> output_padding = at::IntArrayRef(o.output_padding()).vec();
  if (output_size) {
    std::vector<int64_t> size = output_size->vec();
    if (size.size() == D + 2) size.erase(size.begin(), size.begin() + 2);
    TORCH_CHECK_VALUE(size.size() == D, name, ": output_size must have ", D, " or ", D + 2,
                      " elements, got ", output_size->size());
    for (size_t d = 0; d < D; ++d) {
      const int64_t min_size =
          (input.size(static_cast<int64_t>(d) + input.dim() - D) - 1) * (*o.stride())[d] -
          2 * (*o.padding())[d] + (*o.dilation())[d] * ((*o.kernel_size())[d] - 1) + 1;
      const int64_t max_size = min_size + (*o.stride())[d] - 1;
      TORCH_CHECK_VALUE(size[d] >= min_size && size[d] <= max_size, name,
                        ": requested an output size of ", size[d], " in dim ", d,
                        ", but valid sizes range from ", min_size, " to ", max_size,
                        " (for an input of ", input.sizes(), ")");
      output_padding[d] = size[d] - min_size;
    }
  }
  return at::convolution(input, weight, bias, *o.stride(), *o.padding(), *o.dilation(), true,
                         output_padding, o.groups());
}

#define TORCHQUANT_INSTANTIATE_CONV(D)                                                         \
  template at::Tensor conv_forward<D>(const at::Tensor&, const at::Tensor&, const at::Tensor&, \
                                      const torch::nn::ConvOptions<D>&);                       \
  template at::Tensor conv_transpose_forward<D>(                                               \
      const at::Tensor&, const at::Tensor&, const at::Tensor&,                                 \
      const torch::nn::ConvTransposeOptions<D>&, const c10::optional<at::IntArrayRef>&,        \
      const char*);
TORCHQUANT_INSTANTIATE_CONV(1)
TORCHQUANT_INSTANTIATE_CONV(2)
TORCHQUANT_INSTANTIATE_CONV(3)

}  // namespace detail
}  // namespace nn
}  // namespace torchquant
