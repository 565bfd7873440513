#pragma once
// Scalar element math of the CPU kernels, written so that GCC and Clang vectorise the loops.

#include <c10/macros/Macros.h>

#include <cmath>
#include <type_traits>

namespace torchquant {
namespace detail {

/// Round half to even of a value already clamped to |v| <= 2^16 (any rounding of the integer
/// range), NaN kept. Adding and subtracting 1.5 * 2^mantissa_bits rounds in the FPU's default
/// round-to-nearest-even mode and vectorises without SSE4.1; copysign keeps -0.0 as torch.round.
template <typename acc_t>
C10_ALWAYS_INLINE acc_t round_half_even_small(acc_t v) {
  constexpr acc_t kMagic =
      std::is_same<acc_t, double>::value ? acc_t(6755399441055744.0) : acc_t(12582912.0f);
  const acc_t r = (v + kMagic) - kMagic;
  return std::copysign(r, v);
}

/// clamp(v, lo, hi) that keeps NaN (as torch.clamp).
template <typename acc_t>
C10_ALWAYS_INLINE acc_t clamp_keep_nan(acc_t v, acc_t lo, acc_t hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

}  // namespace detail
}  // namespace torchquant
