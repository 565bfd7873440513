// CUDA kernels of tensor_quant / fake_tensor_quant and scaled_e4m3, and the CUDA registrations.
// They honour narrow_range (upstream's CUDA kernels always use [-127, 127]).

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_fp8.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "cuda_kernels.h"
#include "ops/quant_common.h"

namespace torchquant {
namespace detail {

int64_t grid_for(int64_t n) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, sms * 32));
}

namespace {

constexpr int kThreads = 256;

template <typename scalar_t, typename acc_t, bool kFake>
__device__ __forceinline__ scalar_t quant_value(acc_t x, acc_t smul, acc_t sdiv, acc_t lo,
                                                acc_t hi) {
  acc_t v = x * smul;
  v = v < lo ? lo : v;  // keeps NaN, as torch.clamp
  v = v > hi ? hi : v;
  const acc_t q = rint(v);  // round half to even
  if constexpr (!kFake) {
    return static_cast<scalar_t>(q);
  } else if constexpr (std::is_same<scalar_t, c10::Half>::value) {
    return static_cast<scalar_t>(static_cast<acc_t>(static_cast<scalar_t>(q)) / sdiv);
  } else {
    return static_cast<scalar_t>(q / sdiv);
  }
}

// Flat grid-stride loop; the channel of element i is (i / inner) % channels (0 per tensor).
template <typename scalar_t, typename acc_t, bool kFake, bool kPerTensor>
__global__ void quant_flat_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                  bool* __restrict__ mask, int64_t n, int64_t inner,
                                  int64_t channels, const acc_t* __restrict__ smul,
                                  const acc_t* __restrict__ sdiv, const acc_t* __restrict__ amax,
                                  acc_t lo, acc_t hi) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = kPerTensor ? 0 : (i / inner) % channels;
    const acc_t xi = static_cast<acc_t>(x[i]);
    y[i] = quant_value<scalar_t, acc_t, kFake>(xi, smul[c], sdiv[c], lo, hi);
    if (mask != nullptr) mask[i] = fabs(xi) <= amax[c];
  }
}

// Per-tensor float32 with 16-byte loads and stores.
template <bool kFake>
__global__ void quant_vec4_kernel(const float4* __restrict__ x, float4* __restrict__ y,
                                  char4* __restrict__ mask, int64_t n4,
                                  const float* __restrict__ smul_p,
                                  const float* __restrict__ sdiv_p,
                                  const float* __restrict__ amax_p, float lo, float hi) {
  const float smul = *smul_p, sdiv = *sdiv_p, amax = *amax_p;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float4 v = x[i];
    float4 o;
    o.x = quant_value<float, float, kFake>(v.x, smul, sdiv, lo, hi);
    o.y = quant_value<float, float, kFake>(v.y, smul, sdiv, lo, hi);
    o.z = quant_value<float, float, kFake>(v.z, smul, sdiv, lo, hi);
    o.w = quant_value<float, float, kFake>(v.w, smul, sdiv, lo, hi);
    y[i] = o;
    if (mask != nullptr) {
      mask[i] = make_char4(fabsf(v.x) <= amax, fabsf(v.y) <= amax, fabsf(v.z) <= amax,
                           fabsf(v.w) <= amax);
    }
  }
}

// One (outer, channel) row per blockIdx.y step: no index division per element.
template <typename scalar_t, typename acc_t, bool kFake>
__global__ void quant_rows_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                  bool* __restrict__ mask, int64_t rows, int64_t inner,
                                  int64_t channels, const acc_t* __restrict__ smul,
                                  const acc_t* __restrict__ sdiv, const acc_t* __restrict__ amax,
                                  acc_t lo, acc_t hi) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t c = r % channels;
    const acc_t sm = smul[c], sd = sdiv[c], am = amax[c];
    const int64_t base = r * inner;
    for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < inner;
         j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
      const acc_t xi = static_cast<acc_t>(x[base + j]);
      y[base + j] = quant_value<scalar_t, acc_t, kFake>(xi, sm, sd, lo, hi);
      if (mask != nullptr) mask[base + j] = fabs(xi) <= am;
    }
  }
}

bool is_aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
bool is_aligned4(const void* p) { return reinterpret_cast<uintptr_t>(p) % 4 == 0; }

template <typename scalar_t, bool kFake>
void launch_quant(const at::Tensor& x, const QuantParams& p, const at::Tensor& out,
                  const at::Tensor& mask) {
  using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
  const ChannelLayout& L = p.layout;
  const int64_t n = x.numel();
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* yp = out.data_ptr<scalar_t>();
  bool* mp = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  const acc_t* smul = p.scale_mul.const_data_ptr<acc_t>();
  const acc_t* sdiv = p.scale_div.const_data_ptr<acc_t>();
  const acc_t* amax = p.amax.const_data_ptr<acc_t>();
  const acc_t lo = static_cast<acc_t>(p.min_bound), hi = static_cast<acc_t>(p.max_bound);
  auto stream = at::cuda::getCurrentCUDAStream();
  if (L.kind == ChannelLayout::Kind::kPerTensor) {
    if constexpr (std::is_same<scalar_t, float>::value) {
      if (n % 4 == 0 && is_aligned16(xp) && is_aligned16(yp) &&
          (mp == nullptr || is_aligned4(mp))) {
        quant_vec4_kernel<kFake><<<grid_for(n / 4), kThreads, 0, stream>>>(
            reinterpret_cast<const float4*>(xp), reinterpret_cast<float4*>(yp),
            reinterpret_cast<char4*>(mp), n / 4, smul, sdiv, amax, lo, hi);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        return;
      }
    }
    quant_flat_kernel<scalar_t, acc_t, kFake, true>
        <<<grid_for(n), kThreads, 0, stream>>>(xp, yp, mp, n, 1, 1, smul, sdiv, amax, lo, hi);
  } else if (L.kind == ChannelLayout::Kind::kPerChannel && L.inner >= 64) {
    const int64_t rows = L.outer * L.channels;
    const dim3 grid(
        static_cast<unsigned>(std::min<int64_t>((L.inner + kThreads - 1) / kThreads, 64)),
        static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
    quant_rows_kernel<scalar_t, acc_t, kFake><<<grid, kThreads, 0, stream>>>(
        xp, yp, mp, rows, L.inner, L.channels, smul, sdiv, amax, lo, hi);
  } else {
    const bool general = L.kind == ChannelLayout::Kind::kGeneral;
    quant_flat_kernel<scalar_t, acc_t, kFake, false><<<grid_for(n), kThreads, 0, stream>>>(
        xp, yp, mp, n, general ? 1 : L.inner, general ? n : L.channels, smul, sdiv, amax, lo, hi);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename acc_t>
__global__ void e4m3_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                            bool* __restrict__ mask, int64_t n, acc_t scale, bool zero,
                            acc_t mask_amax) {
  const acc_t tiny = acc_t(1.0 / (1 << 24));
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const acc_t xi = static_cast<acc_t>(x[i]);
    acc_t v = 0;
    if (!(zero || fabs(xi) < tiny)) {     // written so that NaN goes through and stays NaN (as CPU)
      const __nv_fp8_e4m3 q(xi * scale);  // round to nearest even, saturating (__NV_SATFINITE)
      v = static_cast<acc_t>(static_cast<float>(q)) / scale;
    }
    y[i] = static_cast<scalar_t>(v);
    if (mask != nullptr) mask[i] = fabs(xi) <= mask_amax;
  }
}

}  // namespace

bool quant_kernel_cuda(const at::Tensor& x, const QuantParams& p, bool fake, const at::Tensor& out,
                       const at::Tensor& mask) {
  const c10::cuda::CUDAGuard guard(x.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tensor_quant_cuda",
                                  [&] {
                                    if (fake) {
                                      launch_quant<scalar_t, true>(x, p, out, mask);
                                    } else {
                                      launch_quant<scalar_t, false>(x, p, out, mask);
                                    }
                                  });
  return false;  // negative unsigned inputs are checked before the launch
}

void e4m3_kernel_cuda(const at::Tensor& x, float scale, bool zero, float mask_amax,
                      const at::Tensor& out, const at::Tensor& mask) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "scaled_e4m3_cuda", [&] {
        using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
        e4m3_kernel<scalar_t, acc_t>
            <<<grid_for(n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
                x.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                mask.defined() ? mask.data_ptr<bool>() : nullptr, n, static_cast<acc_t>(scale),
                zero, static_cast<acc_t>(mask_amax));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CUDA, m) {
  using namespace torchquant::detail;
  register_quant_kernels<quant_kernel_cuda, e4m3_kernel_cuda, ste_backward_cuda>(m);
}
