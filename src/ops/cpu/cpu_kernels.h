#pragma once
// CPU kernels that other CPU files register (see quant_common.h for their contracts).

#include <ATen/core/Tensor.h>

namespace torchquant {
namespace detail {

void e4m3_kernel_cpu(const at::Tensor& inputs, float scale, bool zero, float mask_amax,
                     const at::Tensor& out, const at::Tensor& mask);

void ste_backward_cpu(const at::Tensor& grad, const at::Tensor& mask, const at::Tensor& grad_input);

}  // namespace detail
}  // namespace torchquant
