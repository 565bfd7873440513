#pragma once
// Typed dispatcher calls of the torchquant ops (schemas in quant_ops.cpp).

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <tuple>

namespace torchquant {
namespace ops {

std::tuple<at::Tensor, at::Tensor> tensor_quant(const at::Tensor& inputs, const at::Tensor& amax,
                                                int64_t num_bits, bool is_unsigned,
                                                bool narrow_range);
at::Tensor fake_tensor_quant(const at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                             bool is_unsigned, bool narrow_range);
at::Tensor& fake_tensor_quant_out(const at::Tensor& inputs, const at::Tensor& amax,
                                  int64_t num_bits, bool is_unsigned, bool narrow_range,
                                  at::Tensor& out);
at::Tensor& fake_tensor_quant_(at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                               bool is_unsigned, bool narrow_range);
std::tuple<at::Tensor, at::Tensor, at::Tensor> tensor_quant_with_mask(const at::Tensor& inputs,
                                                                      const at::Tensor& amax,
                                                                      int64_t num_bits,
                                                                      bool is_unsigned,
                                                                      bool narrow_range);
std::tuple<at::Tensor, at::Tensor> fake_tensor_quant_with_mask(const at::Tensor& inputs,
                                                               const at::Tensor& amax,
                                                               int64_t num_bits, bool is_unsigned,
                                                               bool narrow_range);
/// fake_tensor_quant_with_mask into preallocated contiguous `out` (inputs' shape and dtype) and
/// `mask` (the kernel's format: packed uint8 bits on the CPU, bool of inputs' shape elsewhere).
/// No autograd: for tensors that do not need grad, or with grad mode off.
void fake_tensor_quant_with_mask_out(const at::Tensor& inputs, const at::Tensor& amax,
                                     int64_t num_bits, bool is_unsigned, bool narrow_range,
                                     at::Tensor& out, at::Tensor& mask);
at::Tensor fake_affine_tensor_quant(const at::Tensor& inputs, const at::Tensor& min_range,
                                    const at::Tensor& max_range, int64_t num_bits);
/// fake_affine_tensor_quant and its straight-through mask min_range <= x <= max_range (packed
/// uint8 bits on the CPU, bool of inputs' shape elsewhere).
std::tuple<at::Tensor, at::Tensor> fake_affine_tensor_quant_with_mask(const at::Tensor& inputs,
                                                                      const at::Tensor& min_range,
                                                                      const at::Tensor& max_range,
                                                                      int64_t num_bits);
at::Tensor scaled_e4m3(const at::Tensor& inputs, const c10::optional<at::Tensor>& amax, int64_t E,
                       int64_t M);
std::tuple<at::Tensor, at::Tensor> scaled_e4m3_with_mask(const at::Tensor& inputs,
                                                         const c10::optional<at::Tensor>& amax,
                                                         int64_t E, int64_t M);
at::Tensor ste_backward(const at::Tensor& grad, const at::Tensor& mask);
/// `grad * mask` written into `grad` (no autograd: for gradients that do not require grad).
at::Tensor& ste_backward_(at::Tensor& grad, const at::Tensor& mask);
/// int64 counts of |x| in `num_bins` bins over [0, top] with at::histc's float32 bin rule
/// (|x| == top in the last bin, |x| > top and NaN not counted, zeros skipped if asked), on x's
/// device.
at::Tensor abs_histogram(const at::Tensor& x, double top, int64_t num_bins, bool skip_zeros);

}  // namespace ops
}  // namespace torchquant
