#pragma once
// FP8 E4M3 rounding on the CPU, bit-identical to CUDA's __nv_fp8_e4m3 conversion with
// saturation (__NV_SATFINITE): round to nearest even, |x| > 448 (and +-Inf) -> +-448, NaN -> NaN.

#include <c10/macros/Macros.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

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

/// e4m3_round for float without branches or libm calls, so that a loop of it vectorises (the CPU
/// kernel's): the quantum 2^(max(e, -6) - 3) is built from |v|'s exponent bits, |v| divided by
/// it (exact) is rounded by adding and subtracting 1.5 * 2^23, and multiplied back (exact). The
/// same bits as e4m3_round<float> for every float (tests sweep them).
C10_ALWAYS_INLINE float e4m3_round_float(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof(bits));
  const uint32_t sign = bits & 0x80000000u, abs_bits = bits & 0x7fffffffu;
  float a = 0;
  std::memcpy(&a, &abs_bits, sizeof(a));
  int32_t e = static_cast<int32_t>(abs_bits >> 23) - 127;  // -127 for zero and subnormals
  e = e < -6 ? -6 : e;                                     // at most 128 (Inf, NaN)
  const auto quantum_bits = static_cast<uint32_t>(e - 3 + 127) << 23;
  const auto inverse_bits = static_cast<uint32_t>(3 - e + 127) << 23;
  float quantum = 0, inverse = 0;
  std::memcpy(&quantum, &quantum_bits, sizeof(quantum));
  std::memcpy(&inverse, &inverse_bits, sizeof(inverse));
  const float t = a * inverse;  // below 16 for |v| < 448; Inf for Inf, NaN for NaN
  float r = ((t + 12582912.0f) - 12582912.0f) * quantum;
  r = r < 448.0f ? r : 448.0f;  // from 448 up, Inf (whose r is NaN) included
  uint32_t r_bits = 0;
  std::memcpy(&r_bits, &r, sizeof(r_bits));
  r_bits |= sign;
  float out = 0;
  std::memcpy(&out, &r_bits, sizeof(out));
  return v != v ? v : out;
}

}  // namespace detail
}  // namespace torchquant
