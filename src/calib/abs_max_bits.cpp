#include "calib/abs_max_bits.h"

#include "util/prefetch.h"
#include "util/x86_target.h"

namespace torchquant {
namespace calib {
namespace detail {
// Plain C++ that the compiler vectorises.
uint32_t abs_max_bits_scalar(const float* data, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = abs_bits(data[i]);
    m = m < b ? b : m;
  }
  return m;
}

#if defined(__x86_64__)

TORCHQUANT_INTRINSICS_WARNINGS_OFF

// Four vectors a step, one line of data each with AVX-512.
TORCHQUANT_TARGET_AVX512 uint32_t abs_max_bits_avx512(const float* data, int64_t n) {
  const __m512i mask = _mm512_set1_epi32(static_cast<int32_t>(kAbsMask));
  __m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    torchquant::detail::prefetch_ahead(data + i, 64 * sizeof(float));
    m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_loadu_si512(data + i), mask));
    m1 = _mm512_max_epu32(m1, _mm512_and_si512(_mm512_loadu_si512(data + i + 16), mask));
    m2 = _mm512_max_epu32(m2, _mm512_and_si512(_mm512_loadu_si512(data + i + 32), mask));
    m3 = _mm512_max_epu32(m3, _mm512_and_si512(_mm512_loadu_si512(data + i + 48), mask));
  }
  for (; i < n; i += 16) {
    const auto lanes = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_maskz_loadu_epi32(lanes, data + i), mask));
  }
  m0 = _mm512_max_epu32(_mm512_max_epu32(m0, m1), _mm512_max_epu32(m2, m3));
  return static_cast<uint32_t>(_mm512_reduce_max_epu32(m0));
}

TORCHQUANT_INTRINSICS_WARNINGS_ON

// The max of `m` and the |x| bits of the 16 floats at `p` (a line), prefetching ahead.
TORCHQUANT_TARGET_AVX2 static inline __m256i max_line(const float* p, __m256i m, __m256i mask) {
  torchquant::detail::prefetch_ahead(p, 16 * sizeof(float));
  const auto* v = reinterpret_cast<const __m256i*>(p);
  m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(v), mask));
  return _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(v + 1), mask));
}

// With AVX2: four streams a quarter of the data apart, read side by side, two vectors (a line) of
// each a step. On an AMD EPYC (Zen 2) VM one core read four streams faster than one: collect with
// one stream 0.61x the copy paired (1 thread), with two 0.55x, with four 0.47x.
TORCHQUANT_TARGET_AVX2 uint32_t abs_max_bits_avx2(const float* data, int64_t n) {
  constexpr int64_t kStreams = 4, kStep = 16;
  const __m256i mask = _mm256_set1_epi32(static_cast<int32_t>(kAbsMask));
  const int64_t quarter = n / (kStreams * kStep) * kStep;
  const float* s0 = data;
  const float* s1 = s0 + quarter;
  const float* s2 = s1 + quarter;
  const float* s3 = s2 + quarter;
  __m256i m0 = _mm256_setzero_si256(), m1 = m0, m2 = m0, m3 = m0;
  for (int64_t i = 0; i < quarter; i += kStep) {
    m0 = max_line(s0 + i, m0, mask);
    m1 = max_line(s1 + i, m1, mask);
    m2 = max_line(s2 + i, m2, mask);
    m3 = max_line(s3 + i, m3, mask);
  }
  m0 = _mm256_max_epu32(_mm256_max_epu32(m0, m1), _mm256_max_epu32(m2, m3));
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m0);
  uint32_t m = abs_max_bits_scalar(data + kStreams * quarter, n - kStreams * quarter);
  for (uint32_t lane : lanes) m = m < lane ? lane : m;
  return m;
}

#endif

AbsMaxBitsFn abs_max_bits_for(torchquant::detail::CpuIsa isa) {
#if defined(__x86_64__)
  return torchquant::detail::pick_version(isa, abs_max_bits_scalar, abs_max_bits_avx2,
                                          abs_max_bits_avx512);
#else
  (void)isa;
  return abs_max_bits_scalar;
#endif
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
