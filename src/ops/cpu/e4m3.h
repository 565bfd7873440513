#pragma once
// FP8 E4M3 rounding on the CPU, bit-identical to CUDA's __nv_fp8_e4m3 conversion with
// saturation (__NV_SATFINITE): round to nearest even, |x| > 448 (and +-Inf) -> +-448, NaN -> NaN.

#include <c10/macros/Macros.h>

#include <algorithm>
#include <cmath>

namespace torchquant {
namespace detail {

constexpr double kE4m3Max = 448.0;

/// Returns the E4M3 value nearest to `v` (ties to even), as a value of the same type.
template <typename T>
C10_HOST_DEVICE inline T e4m3_round(T v) {
  if (std::isnan(v)) return v;
  const T a = std::fabs(v);
  if (a >= T(kE4m3Max)) return std::copysign(T(kE4m3Max), v);
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e with f in [0.5, 1)
  const int exponent =
      std::max(e - 1, -6);  // -6 is the smallest normal exponent (subnormals below)
  const T quantum = std::ldexp(T(1), exponent - 3);   // 3 mantissa bits
  const T r = std::nearbyint(a / quantum) * quantum;  // exact: quantum is a power of two
  return std::copysign(std::min(r, T(kE4m3Max)), v);
}

}  // namespace detail
}  // namespace torchquant
