// CUDA kernel of torchquant::_abs_histogram: per-block shared-memory histograms (when the bins fit)
// flushed into int64 totals, at::histc's float32 bin rule with correctly rounded mul and div.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda_kernels.h"
#include "ops/histogram_checks.h"

namespace torchquant {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxSharedBins = 12 * 1024;  // 48 KiB of uint32 counters

__device__ __forceinline__ int bin_of(float a, float top, float bins_f, int num_bins) {
  int pos = static_cast<int>(__fdiv_rn(__fmul_rn(a, bins_f), top));
  return pos == num_bins ? num_bins - 1 : pos;
}

template <bool kShared>
__global__ void abs_histogram_kernel(const float* __restrict__ x, int64_t n, float top,
                                     float bins_f, int num_bins, bool skip_zeros,
                                     unsigned long long* __restrict__ counts) {
  extern __shared__ unsigned int local[];
  if (kShared) {
    for (int b = threadIdx.x; b < num_bins; b += blockDim.x) local[b] = 0;
    __syncthreads();
  }
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float a = fabsf(x[i]);
    if (!(a <= top) || (skip_zeros && a == 0.f)) continue;
    const int pos = bin_of(a, top, bins_f, num_bins);
    if (kShared) {
      atomicAdd(&local[pos], 1u);
    } else {
      atomicAdd(&counts[pos], 1ull);
    }
  }
  if (kShared) {
    __syncthreads();
    for (int b = threadIdx.x; b < num_bins; b += blockDim.x) {
      if (local[b] != 0) atomicAdd(&counts[b], static_cast<unsigned long long>(local[b]));
    }
  }
}

at::Tensor abs_histogram_cuda(const at::Tensor& x, double top, int64_t num_bins, bool skip_zeros) {
  check_abs_histogram_args(x, top, num_bins);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor data = x.to(at::kFloat).contiguous();
  at::Tensor counts = at::zeros({num_bins}, x.options().dtype(at::kLong));
  const int64_t n = data.numel();
  if (n == 0) return counts;
  auto* out = reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto bins = static_cast<int>(num_bins);
  const auto bins_f = static_cast<float>(num_bins);
  const auto top_f = static_cast<float>(top);
  if (num_bins <= kMaxSharedBins) {
    abs_histogram_kernel<true><<<grid_for(n), kThreads, num_bins * sizeof(unsigned int), stream>>>(
        data.const_data_ptr<float>(), n, top_f, bins_f, bins, skip_zeros, out);
  } else {
    abs_histogram_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(
        data.const_data_ptr<float>(), n, top_f, bins_f, bins, skip_zeros, out);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return counts;
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CUDA, m) {
  m.impl("_abs_histogram", &torchquant::detail::abs_histogram_cuda);
}
