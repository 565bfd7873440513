// The histogram pass's bin codes with AVX-512 (F, BW, DQ, VL) intrinsics; see bin_codes.h.

#include "calib/bin_codes.h"

#if defined(__x86_64__)
#include "util/x86_target.h"

namespace torchquant {
namespace calib {
namespace detail {
namespace {

TORCHQUANT_INTRINSICS_WARNINGS_OFF

// 16 elements a step. Exact zeros are counted with a popcount and, like uncounted elements, left
// out of `out` (compressed in a register, stored whole: the slack takes the rest).
struct Avx512Step {
  const BinRule rule;  // a copy: stores to `out` cannot alias it, so its broadcasts are hoisted
  bool skip_zeros;
  int32_t* out;
  uint32_t* recheck;
  __m512i max_bits;
  // Elements of `lanes` of `v` (the others loaded as zeros) into `out`, `recheck` and `r`. Cheaper
  // than the portable rule where it can be: the fraction comes from one vreduceps (|q - round(q)|
  // < margin sets an element aside, also next to 0, except exact zeros), no clamp of |x| to top
  // (the uncounted ones' codes are dropped, and an out-of-range conversion is defined here).
  TORCHQUANT_TARGET_AVX512 void operator()(__m512 v, __mmask16 lanes, BinCodes* r) {
    // Loop invariants once this is inlined into the loop.
    const __m512 top = _mm512_set1_ps(rule.top), bins = _mm512_set1_ps(rule.bins_f);
    const __m512 inv_top = _mm512_set1_ps(rule.inv_top), low = _mm512_set1_ps(rule.margin);
    const __m512i b =
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int32_t>(kAbsMask)));
    max_bits = _mm512_max_epu32(max_bits, b);
    const __m512 a = _mm512_castsi512_ps(b);
    const __mmask16 zero = _mm512_testn_epi32_mask(b, b);
    __mmask16 counted = _mm512_mask_cmp_ps_mask(lanes, a, top, _CMP_LE_OQ);
    if (skip_zeros) counted &= static_cast<__mmask16>(~zero);
    const __m512 q =
        _mm512_min_ps(_mm512_mul_ps(_mm512_mul_ps(a, bins), inv_top), _mm512_set1_ps(rule.last));
    const __m512 off = _mm512_abs_ps(_mm512_reduce_ps(q, _MM_FROUND_TO_NEAREST_INT));
    const __mmask16 unsure =
        _mm512_mask_cmp_ps_mask(counted & static_cast<__mmask16>(~zero), off, low, _CMP_LT_OQ);
    const __mmask16 in_first = counted & zero;
    r->first_bin += __builtin_popcount(in_first);
    const auto write = static_cast<__mmask16>(counted & ~(in_first | unsure));
    _mm512_storeu_si512(out + r->size, _mm512_maskz_compress_epi32(write, _mm512_cvttps_epi32(q)));
    r->size += __builtin_popcount(write);
    if (unsure != 0) {  // about one step in 16 with 2048 bins
      _mm512_storeu_si512(recheck + r->rechecks, _mm512_maskz_compress_epi32(unsure, b));
      r->rechecks += __builtin_popcount(unsure);
    }
  }
};

}  // namespace

TORCHQUANT_TARGET_AVX512 BinCodes bin_codes_avx512(const float* data, int64_t n,
                                                   const BinRule& rule, bool skip_zeros,
                                                   int32_t* out, uint32_t* recheck) {
  Avx512Step step{rule, skip_zeros, out, recheck, _mm512_setzero_si512()};
  BinCodes r;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) step(_mm512_loadu_ps(data + i), 0xffff, &r);
  if (i < n) {
    const auto lanes = static_cast<__mmask16>((1u << (n - i)) - 1);
    step(_mm512_maskz_loadu_ps(lanes, data + i), lanes, &r);
  }
  r.max_bits = static_cast<uint32_t>(_mm512_reduce_max_epu32(step.max_bits));
  return r;
}
TORCHQUANT_INTRINSICS_WARNINGS_ON

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
#endif
