// The histogram pass's bin codes with AVX2 intrinsics; see bin_codes.h. The same rule as the
// AVX-512 version, 8 elements a step, left-packed through a permutation looked up by the 8-bit
// mask of the codes to write.

#include "calib/bin_codes.h"

#if defined(__x86_64__)
#include <array>

#include "util/x86_target.h"

namespace torchquant {
namespace calib {
namespace detail {
namespace {

// For each 8-bit mask, the lanes it selects in order, one byte each (the rest 0).
constexpr std::array<uint64_t, 256> make_left_pack() {
  std::array<uint64_t, 256> table{};
  for (uint32_t mask = 0; mask < 256; ++mask) {
    uint64_t lanes = 0;
    int next = 0;
    for (uint64_t lane = 0; lane < 8; ++lane) {
      if ((mask >> lane) & 1u) lanes |= lane << (8 * next++);
    }
    table[mask] = lanes;
  }
  return table;
}
constexpr std::array<uint64_t, 256> kLeftPack = make_left_pack();

// The lanes of `v` selected by the 8-bit `mask`, left-packed into out[0, 8).
TORCHQUANT_TARGET_AVX2 void store_left_packed(__m256i v, uint32_t mask, void* out) {
  const __m256i order =
      _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(kLeftPack[mask])));
  _mm256_storeu_si256(static_cast<__m256i*>(out), _mm256_permutevar8x32_epi32(v, order));
}

struct Avx2Step {
  const BinRule rule;  // a copy: stores to `out` cannot alias it, so its broadcasts are hoisted
  bool skip_zeros;
  int32_t* out;
  uint32_t* recheck;
  __m256i max_bits;
  // As Avx512Step: lanes of `v` selected by `lanes` (all ones or zeros per lane; the others
  // loaded as zeros); the fraction as |q - round(q)|; out-of-range conversions are dropped.
  TORCHQUANT_TARGET_AVX2 void operator()(__m256 v, __m256i lanes, BinCodes* r) {
    const __m256 top = _mm256_set1_ps(rule.top), bins = _mm256_set1_ps(rule.bins_f);
    const __m256 inv_top = _mm256_set1_ps(rule.inv_top), low = _mm256_set1_ps(rule.margin);
    const __m256i abs_mask = _mm256_set1_epi32(static_cast<int32_t>(kAbsMask));
    const __m256i b = _mm256_and_si256(_mm256_castps_si256(v), abs_mask);
    max_bits = _mm256_max_epu32(max_bits, b);
    const __m256 a = _mm256_castsi256_ps(b);
    const __m256i zero = _mm256_cmpeq_epi32(b, _mm256_setzero_si256());
    __m256i counted =
        _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(a, top, _CMP_LE_OQ)), lanes);
    if (skip_zeros) counted = _mm256_andnot_si256(zero, counted);
    const __m256 q = _mm256_min_ps(_mm256_mul_ps(_mm256_mul_ps(a, bins), inv_top), bins);
    const __m256 off = _mm256_and_ps(
        _mm256_sub_ps(q, _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
        _mm256_castsi256_ps(abs_mask));
    const __m256i unsure =
        _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(off, low, _CMP_LT_OQ)),
                         _mm256_andnot_si256(zero, counted));
    const __m256i in_first = _mm256_and_si256(counted, zero);
    r->first_bin += __builtin_popcount(
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(in_first))));
    const auto write = static_cast<uint32_t>(_mm256_movemask_ps(
        _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_or_si256(in_first, unsure), counted))));
    store_left_packed(_mm256_cvttps_epi32(q), write, out + r->size);
    r->size += __builtin_popcount(write);
    const auto aside = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(unsure)));
    if (aside != 0) {  // about one step in 30 with 2048 bins
      store_left_packed(b, aside, recheck + r->rechecks);
      r->rechecks += __builtin_popcount(aside);
    }
  }
};

}  // namespace

TORCHQUANT_TARGET_AVX2 BinCodes bin_codes_avx2(const float* data, int64_t n, const BinRule& rule,
                                               bool skip_zeros, int32_t* out, uint32_t* recheck) {
  Avx2Step step{rule, skip_zeros, out, recheck, _mm256_setzero_si256()};
  const __m256i all = _mm256_set1_epi32(-1);
  BinCodes r;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) step(_mm256_loadu_ps(data + i), all, &r);
  if (i < n) {
    // Lane k is selected when k < n - i.
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n - i)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    step(_mm256_maskload_ps(data + i, lanes), lanes, &r);
  }
  alignas(32) uint32_t lanes_max[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes_max), step.max_bits);
  for (uint32_t m : lanes_max) r.max_bits = m > r.max_bits ? m : r.max_bits;
  return r;
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
#endif
