#include "calib/bin_codes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace torchquant {
namespace calib {
namespace detail {
namespace {

constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kMark = 0x80000000u;

uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u & kAbsMask;
}

// Every element written, none counted here; compiled once per instruction set below. Selects are
// written as integer masks: with `? :` GCC moved the float-to-int conversion under a branch (it
// may trap, so it is not if-converted) and the loop stayed scalar, four times slower.
C10_ALWAYS_INLINE BinCodes bin_codes_body(const float* data, int64_t n, const BinRule& rule,
                                          bool skip_zeros, int32_t* out) {
  const float top = rule.top, bins_f = rule.bins_f, inv_top = rule.inv_top;
  const float low = rule.margin, high = 1.0f - rule.margin;
  const auto num_bins = static_cast<uint32_t>(rule.num_bins);
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = bits_of(data[i]);
    m = m < b ? b : m;
    const float a = std::fabs(data[i]);
    const bool counted = (a <= top) & !(skip_zeros & (a == 0.f));
    float q = (std::min(a, top) * bins_f) * inv_top;
    q = q < bins_f ? q : bins_f;
    const auto pos = static_cast<int32_t>(q);
    const float frac = q - static_cast<float>(pos);
    const uint32_t unsure =
        0u - ((static_cast<uint32_t>(frac < low) & static_cast<uint32_t>(pos != 0)) |
              static_cast<uint32_t>(frac > high));
    const uint32_t code = (static_cast<uint32_t>(pos) & ~unsure) | ((b | kMark) & unsure);
    const uint32_t keep = 0u - static_cast<uint32_t>(counted);
    out[i] = static_cast<int32_t>((code & keep) | (num_bins & ~keep));
  }
  return {n, 0, m};
}

BinCodes bin_codes_scalar(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          int32_t* out) {
  return bin_codes_body(data, n, rule, skip_zeros, out);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) BinCodes bin_codes_avx2(const float* data, int64_t n,
                                                        const BinRule& rule, bool skip_zeros,
                                                        int32_t* out) {
  return bin_codes_body(data, n, rule, skip_zeros, out);
}

// GCC 12 warns about the undefined-value operand inside its own AVX-512 intrinsics headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// 16 elements a step. Exact zeros are counted with a popcount and, like uncounted elements, left
// out of `out` (compressed in a register, stored whole: the slack takes the rest).
#define TORCHQUANT_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
struct Avx512Step {
  __m512 top, bins, inv_top, low;
  __m512i abs_mask, mark, max_bits;
  bool skip_zeros;
  TORCHQUANT_AVX512 Avx512Step(const BinRule& rule, bool skip)
      : top(_mm512_set1_ps(rule.top)),
        bins(_mm512_set1_ps(rule.bins_f)),
        inv_top(_mm512_set1_ps(rule.inv_top)),
        low(_mm512_set1_ps(rule.margin)),
        abs_mask(_mm512_set1_epi32(static_cast<int32_t>(kAbsMask))),
        mark(_mm512_set1_epi32(static_cast<int32_t>(kMark))),
        max_bits(_mm512_setzero_si512()),
        skip_zeros(skip) {}
  // Elements of `lanes` of `v` (the others loaded as zeros): codes into out[0, ...); returns how
  // many; adds the zeros to *zeros. Cheaper than the portable rule where it can be: the fraction
  // comes from one vreduceps (|q - round(q)| < margin marks an element, also next to 0, except
  // exact zeros), no clamp of |x| to top (the uncounted ones' codes are dropped, and an
  // out-of-range conversion is defined here: 0x80000000).
  TORCHQUANT_AVX512 int64_t operator()(__m512 v, __mmask16 lanes, int32_t* out, int64_t* zeros) {
    const __m512i b = _mm512_and_si512(_mm512_castps_si512(v), abs_mask);
    max_bits = _mm512_max_epu32(max_bits, b);
    const __m512 a = _mm512_castsi512_ps(b);
    const __mmask16 zero = _mm512_testn_epi32_mask(b, b);
    __mmask16 counted = _mm512_mask_cmp_ps_mask(lanes, a, top, _CMP_LE_OQ);
    if (skip_zeros) counted &= static_cast<__mmask16>(~zero);
    const __m512 q = _mm512_min_ps(_mm512_mul_ps(_mm512_mul_ps(a, bins), inv_top), bins);
    const __m512i pos = _mm512_cvttps_epi32(q);
    const __m512 off = _mm512_abs_ps(_mm512_reduce_ps(q, _MM_FROUND_TO_NEAREST_INT));
    const __mmask16 unsure =
        _mm512_mask_cmp_ps_mask(counted & static_cast<__mmask16>(~zero), off, low, _CMP_LT_OQ);
    const __mmask16 in_first = counted & zero;
    *zeros += __builtin_popcount(in_first);
    const __mmask16 write = counted & static_cast<__mmask16>(~in_first);
    const __m512i code = _mm512_mask_or_epi32(pos, unsure, b, mark);
    _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(write, code));
    return __builtin_popcount(write);
  }
};

TORCHQUANT_AVX512 BinCodes bin_codes_avx512(const float* data, int64_t n, const BinRule& rule,
                                            bool skip_zeros, int32_t* out) {
  Avx512Step step(rule, skip_zeros);
  BinCodes r;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    r.size += step(_mm512_loadu_ps(data + i), 0xffff, out + r.size, &r.first_bin);
  }
  if (i < n) {
    const auto lanes = static_cast<__mmask16>((1u << (n - i)) - 1);
    r.size += step(_mm512_maskz_loadu_ps(lanes, data + i), lanes, out + r.size, &r.first_bin);
  }
  r.max_bits = static_cast<uint32_t>(_mm512_reduce_max_epu32(step.max_bits));
  return r;
}
#undef TORCHQUANT_AVX512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace

int32_t exact_bin(float a, float top, float bins_f, int32_t num_bins) {
  float q = (std::min(a, top) * bins_f) / top;
  q = q < bins_f ? q : bins_f;
  const auto pos = static_cast<int32_t>(q);
  return pos == num_bins ? num_bins - 1 : pos;
}

BinRule::BinRule(float top_, int64_t bins) : top(top_), bins_f(static_cast<float>(bins)) {
  num_bins = static_cast<int32_t>(bins);
  inv_top = 1.0f / top;
  margin = bins_f * (1.0f / (1 << 20));
  if (!std::isnormal(inv_top) || !std::isnormal(top) || margin >= 0.25f) margin = 2.0f;
}

int32_t BinRule::exact(int32_t code) const {
  const uint32_t bits = static_cast<uint32_t>(code) & kAbsMask;
  float a;
  std::memcpy(&a, &bits, sizeof(a));
  return exact_bin(a, top, bins_f, num_bins);
}

BinCodesFn bin_codes_for(torchquant::detail::CpuIsa isa) {
#if defined(__x86_64__)
  if (isa == torchquant::detail::CpuIsa::kAvx512) return bin_codes_avx512;
  if (isa == torchquant::detail::CpuIsa::kAvx2) return bin_codes_avx2;
#endif
  (void)isa;
  return bin_codes_scalar;
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
