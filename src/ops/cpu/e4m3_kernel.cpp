// CPU kernel of scaled_e4m3 (upstream has none: it needs its CUDA extension); its straight-through
// mask as packed bits, as the integer ops' (mask_bits.h).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/e4m3.h"
#include "ops/cpu/mask_bits.h"
#include "ops/quant_common.h"

namespace torchquant {
namespace detail {
namespace {

// +0 where `to_zero`, else r, by masking r's bits: a `to_zero ? 0 : r` select had GCC move the
// division under a branch, and the loop was no longer vectorised.
template <typename acc_t>
C10_ALWAYS_INLINE acc_t zero_where(acc_t r, bool to_zero) {
  using U = std::conditional_t<sizeof(acc_t) == 8, uint64_t, uint32_t>;
  U bits = 0;
  std::memcpy(&bits, &r, sizeof(bits));
  bits &= static_cast<U>(to_zero) - 1;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

// Elements [0, n): e4m3(x * s) / s, +0 where `zero` or |x| < 2^-24, and the mask |x| <= amax as
// bools when `m` is set. Float computation through e4m3_round_float (vectorised), double through
// e4m3_round.
template <typename scalar_t, typename acc_t, bool kMask>
C10_ALWAYS_INLINE void e4m3_loop(const scalar_t* __restrict x, scalar_t* __restrict y,
                                 bool* __restrict m, int64_t n, acc_t s, bool zero, acc_t amax) {
  const acc_t tiny = static_cast<acc_t>(kZeroAmaxThreshold);
  for (int64_t i = 0; i < n; ++i) {
    const acc_t xi = static_cast<acc_t>(x[i]);
    acc_t r = 0;
    if constexpr (std::is_same<acc_t, float>::value) {
      r = e4m3_round_float(xi * s) / s;
    } else {
      r = e4m3_round(xi * s) / s;
    }
    y[i] = static_cast<scalar_t>(zero_where(r, zero | (std::fabs(xi) < tiny)));
    if constexpr (kMask) m[i] = std::fabs(xi) <= amax;
  }
}

// The loop without a branch on the mask inside (which kept GCC from vectorising it).
template <typename scalar_t, typename acc_t>
C10_ALWAYS_INLINE void e4m3_span(const scalar_t* x, scalar_t* y, bool* m, int64_t n, acc_t s,
                                 bool zero, acc_t amax) {
  if (m != nullptr) {
    e4m3_loop<scalar_t, acc_t, true>(x, y, m, n, s, zero, amax);
  } else {
    e4m3_loop<scalar_t, acc_t, false>(x, y, m, n, s, zero, amax);
  }
}

// float32, the hot path: compiled for AVX2 and baseline x86-64, picked at load time.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx2", "default")))
#endif
void e4m3_span_f32(const float* x, float* y, bool* m, int64_t n, float s, bool zero, float amax) {
  e4m3_span<float, float>(x, y, m, n, s, zero, amax);
}

template <typename scalar_t, typename acc_t>
void e4m3_dispatch(const scalar_t* x, scalar_t* y, bool* m, int64_t n, acc_t s, bool zero,
                   acc_t amax) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    e4m3_span_f32(x, y, m, n, s, zero, amax);
  } else {
    e4m3_span<scalar_t, acc_t>(x, y, m, n, s, zero, amax);
  }
}

}  // namespace

void e4m3_kernel_cpu(const at::Tensor& x, float scale, bool zero, float mask_amax,
                     const at::Tensor& out, const at::Tensor& mask) {
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "scaled_e4m3_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        scalar_t* yp = out.data_ptr<scalar_t>();
        uint8_t* bits = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
        for_each_block_packing_mask(n, 16384, bits, [&](int64_t b, int64_t e, bool* m) {
          e4m3_dispatch<scalar_t, acc_t>(xp + b, yp + b, m, e - b, scale, zero, mask_amax);
        });
      });
}

}  // namespace detail
}  // namespace torchquant
