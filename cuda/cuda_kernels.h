#pragma once
// CUDA kernels (contracts in src/ops/quant_common.h).

#include <ATen/core/Tensor.h>

#include "ops/quant_common.h"

namespace torchquant {
namespace detail {

bool quant_kernel_cuda(const at::Tensor& inputs, const QuantParams& params, bool fake,
                       const at::Tensor& out, const at::Tensor& mask);

void e4m3_kernel_cuda(const at::Tensor& inputs, float scale, bool zero, float mask_amax,
                      const at::Tensor& out, const at::Tensor& mask);

void ste_backward_cuda(const at::Tensor& grad, const at::Tensor& mask,
                       const at::Tensor& grad_input);

/// Blocks for a grid-stride loop over n elements with 256 threads.
int64_t grid_for(int64_t n);

}  // namespace detail
}  // namespace torchquant
