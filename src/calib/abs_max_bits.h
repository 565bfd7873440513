#pragma once
// max |x| of float32 data as one integer max over the bit patterns, one version per instruction
// set. Internal header.

#include <cstdint>
#include <cstring>

#include "util/cpu_isa.h"

namespace torchquant {
namespace calib {
namespace detail {

/// The bits of a float other than its sign.
constexpr uint32_t kAbsMask = 0x7fffffffu;

/// |x| as its bit pattern, which compares like an unsigned integer (Inf and NaN above every finite
/// value): max |x| and "all finite" are one integer max reduction, which vectorises.
inline uint32_t abs_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u & kAbsMask;
}

/// The largest |x| bit pattern of `data[0, n)` (0 when n == 0). |x| bit patterns compare as
/// unsigned integers compare the values, with Inf and NaN above every finite value: a result
/// above 0x7f7fffff means the data holds a NaN or an Inf.
using AbsMaxBitsFn = uint32_t (*)(const float* data, int64_t n);

/// The version for an instruction set.
AbsMaxBitsFn abs_max_bits_for(torchquant::detail::CpuIsa isa);

/// The versions (call them through abs_max_bits_for). The vector ones (x86-64 only) keep four
/// independent maxima and prefetch kPrefetchAhead bytes ahead (src/util/prefetch.h).
uint32_t abs_max_bits_scalar(const float* data, int64_t n);
uint32_t abs_max_bits_avx2(const float* data, int64_t n);
uint32_t abs_max_bits_avx512(const float* data, int64_t n);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
