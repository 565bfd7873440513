// CUDA kernel of the straight-through estimator's backward: grad where the mask is set, else 0.

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda_kernels.h"

namespace torchquant {
namespace detail {
namespace {

// grad and out may be the same array (the in-place op), so neither is __restrict__.
template <typename scalar_t>
__global__ void ste_backward_kernel(const scalar_t* grad, const bool* __restrict__ mask,
                                    scalar_t* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    out[i] = mask[i] ? grad[i] : scalar_t(0);
  }
}

}  // namespace

void ste_backward_cuda(const at::Tensor& grad, const at::Tensor& mask,
                       const at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t n = grad.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "ste_backward_cuda", [&] {
        ste_backward_kernel<scalar_t><<<grid_for(n), 256, 0, at::cuda::getCurrentCUDAStream()>>>(
            grad.const_data_ptr<scalar_t>(), mask.const_data_ptr<bool>(),
            grad_input.data_ptr<scalar_t>(), n);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace detail
}  // namespace torchquant
