// CPU kernel of fake_affine_tensor_quant: one fused, vectorised pass with at::parallel_for, the
// straight-through mask min_range <= x <= max_range as packed bits (mask_bits.h). It gives the
// bits of upstream's composition of ATen ops (ops/affine_common.h), which it replaces on the CPU:
// each step rounds where ATen's kernel for that op rounds (see affine_scalars). float32, float16
// and bfloat16 run affine_avx2.h's loop on AVX2 CPUs; the generic loop here runs float64 (and
// everything under TORCHQUANT_CPU_ISA=scalar).

#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>

#include "ops/affine_common.h"
#include "ops/cpu/affine_avx2.h"
#include "ops/cpu/mask_bits.h"
#include "ops/cpu/quant_math.h"
#include "ops/quant_common.h"

namespace torchquant {
namespace detail {
namespace {

constexpr const char* kFn = "torchquant::fake_affine_tensor_quant";
constexpr int64_t kGrain = 32768;

/// `v` rounded to scalar_t and back (nothing for float and double).
template <typename scalar_t, typename acc_t>
C10_ALWAYS_INLINE acc_t in_dtype(acc_t v) {
  return static_cast<acc_t>(static_cast<scalar_t>(v));
}

template <typename scalar_t, typename acc_t, bool kMask>
C10_ALWAYS_INLINE void affine_loop(const scalar_t* __restrict x, scalar_t* __restrict y,
                                   bool* __restrict m, int64_t n, const AffineScalars<acc_t>& s) {
  const acc_t step = s.step, zero = s.zero, lo = s.lo, hi = s.hi;
  const acc_t min_range = s.min_range, max_range = s.max_range;
  for (int64_t i = 0; i < n; ++i) {
    const acc_t xi = static_cast<acc_t>(x[i]);
    const acc_t r = std::nearbyint(in_dtype<scalar_t>(xi / step));
    const acc_t q = clamp_keep_nan(in_dtype<scalar_t>(r - zero), lo, hi);
    y[i] = static_cast<scalar_t>(in_dtype<scalar_t>(q + zero) * step);
    if constexpr (kMask) m[i] = (xi >= min_range) & (xi <= max_range);
  }
}

// The loop without a branch on the mask inside.
template <typename scalar_t, typename acc_t>
C10_ALWAYS_INLINE void affine_span(const scalar_t* x, scalar_t* y, bool* m, int64_t n,
                                   const AffineScalars<acc_t>& s) {
  if (m != nullptr) {
    affine_loop<scalar_t, acc_t, true>(x, y, m, n, s);
  } else {
    affine_loop<scalar_t, acc_t, false>(x, y, m, n, s);
  }
}

// The scalars (AffineScalars, affine_avx2.h) as ATen's CPU kernels see them. For float32 and
// float64 inputs every scalar is first cast to the input dtype. For float16 and bfloat16 inputs
// ATen computes in float and rounds each result to the input dtype, and it takes a 0-d operand of
// `/` and `*` at its own precision but casts that of `-`, `+`, clamp's bounds and the comparisons
// to the input dtype (checked against the composition for every pair of dtypes by
// tests/test_affine_kernel.cpp).
template <typename scalar_t, typename acc_t>
AffineScalars<acc_t> affine_scalars(const AffineParams& p) {
  const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
  const auto type = c10::CppTypeToScalarType<scalar_t>::value;
  const bool reduced = !std::is_same<scalar_t, acc_t>::value;
  // Casts by ATen's own conversions (a float64 range goes to float16 in one rounding).
  const auto cast = [&](const at::Tensor& t) {
    return t.to(type).to(acc_type).template item<acc_t>();
  };
  AffineScalars<acc_t> s;
  s.step = reduced ? p.step.to(acc_type).template item<acc_t>() : cast(p.step);
  s.zero = cast(p.quant_zero);
  s.lo = in_dtype<scalar_t>(static_cast<acc_t>(p.min_bound));
  s.hi = in_dtype<scalar_t>(static_cast<acc_t>(p.max_bound));
  s.min_range = cast(p.min_range);
  s.max_range = cast(p.max_range);
  return s;
}

// float64: compiled for AVX2 (nearbyint becomes vroundpd) and baseline x86-64, picked at load
// time.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx2", "default")))
#endif
void affine_span_f64(const double* x, double* y, bool* m, int64_t n,
                     const AffineScalars<double>& s) {
  affine_span<double, double>(x, y, m, n, s);
}

// Elements [0, n) and their packed mask bits (when `bits` is set): float32, float16 and bfloat16
// through affine_avx2 on AVX2 CPUs, in tasks of whole steps (each starts a mask byte); everything
// else through the generic loop (float64's with an AVX2 clone).
template <typename scalar_t, typename acc_t>
void affine_cpu(const scalar_t* x, scalar_t* y, uint8_t* bits, int64_t n,
                const AffineScalars<acc_t>& s) {
  if constexpr (std::is_same<acc_t, float>::value) {
    if (affine_avx2_available()) {
      AffineSpan span;
      span.x = x;
      span.y = y;
      span.bits = bits;
      span.dtype = rows_dtype<scalar_t>();
      span.s = s;
      at::parallel_for(0, (n + 7) / 8, kGrain / 8,
                       [&](int64_t b, int64_t e) { affine_avx2(span, b * 8, std::min(n, e * 8)); });
      return;
    }
  }
  for_each_block_packing_mask(n, kGrain, bits, [&](int64_t b, int64_t e, bool* m) {
    if constexpr (std::is_same<scalar_t, double>::value) {
      affine_span_f64(x + b, y + b, m, e - b, s);
    } else {
      affine_span<scalar_t, acc_t>(x + b, y + b, m, e - b, s);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> run_affine(const at::Tensor& inputs, const at::Tensor& min_range,
                                              const at::Tensor& max_range, int64_t num_bits,
                                              bool want_mask) {
  const AffineParams p = prepare_affine_params(kFn, inputs, min_range, max_range, num_bits);
  at::Tensor out = at::empty(inputs.sizes(), inputs.options());
  at::Tensor mask = want_mask ? prepare_mask(kFn, inputs) : at::Tensor();
  const int64_t n = inputs.numel();
  if (n == 0) return {out, mask};
  const at::Tensor x = inputs.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "affine_cpu", [&] {
    using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    const AffineScalars<acc_t> s = affine_scalars<scalar_t, acc_t>(p);
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = out.data_ptr<scalar_t>();
    uint8_t* bits = want_mask ? mask.data_ptr<uint8_t>() : nullptr;
    affine_cpu<scalar_t, acc_t>(xp, yp, bits, n, s);
  });
  return {out, mask};
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CPU, m) {
  m.impl("fake_affine_tensor_quant",
         [](const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, int64_t nb) {
           return std::get<0>(torchquant::detail::run_affine(x, lo, hi, nb, false));
         });
  m.impl("_fake_affine_tensor_quant_with_mask",
         [](const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, int64_t nb) {
           return torchquant::detail::run_affine(x, lo, hi, nb, true);
         });
}
