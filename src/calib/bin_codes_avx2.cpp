// The histogram pass with AVX2 intrinsics; see bin_codes.h. The same rule as the AVX-512 version,
// 8 elements a step, in two versions: bin codes left-packed through a permutation looked up by the
// 8-bit mask of the codes to write, and a count straight into one histogram.

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

// What both versions do with 8 elements: max |x| bits, exact zeros counted (unless skipped),
// elements near a bin boundary left-packed to `recheck` as their |x| bits.
struct Avx2Sort {
  // A copy: stores to the outputs cannot alias it, so its broadcasts are hoisted.
  const BinRule rule;
  bool skip_zeros;
  uint32_t* recheck;
  __m256i max_bits = _mm256_setzero_si256();
  __m256i first_bin = _mm256_setzero_si256();  // per lane: counting 1 as the mask's -1 subtracted

  // As Avx512Step: lanes of `v` selected by `lanes` (all ones or zeros per lane; the others
  // loaded as zeros); the fraction as |q - round(q)|; out-of-range conversions are dropped.
  // Returns the lanes whose bin is `*bin` (all ones or zeros per lane).
  TORCHQUANT_TARGET_AVX2 __m256i operator()(__m256 v, __m256i lanes, BinCodes* r, __m256i* bin) {
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
    const __m256 q =
        _mm256_min_ps(_mm256_mul_ps(_mm256_mul_ps(a, bins), inv_top), _mm256_set1_ps(rule.last));
    const __m256 off = _mm256_and_ps(
        _mm256_sub_ps(q, _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
        _mm256_castsi256_ps(abs_mask));
    const __m256i unsure =
        _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(off, low, _CMP_LT_OQ)),
                         _mm256_andnot_si256(zero, counted));
    const __m256i in_first = _mm256_and_si256(counted, zero);
    first_bin = _mm256_sub_epi32(first_bin, in_first);
    const auto aside = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(unsure)));
    if (aside != 0) {  // about one step in 30 with 2048 bins
      store_left_packed(b, aside, recheck + r->rechecks);
      r->rechecks += __builtin_popcount(aside);
    }
    *bin = _mm256_cvttps_epi32(q);
    return _mm256_andnot_si256(_mm256_or_si256(in_first, unsure), counted);
  }
};

// bin_codes_avx2's step: the codes left-packed to `out`.
struct Avx2Codes {
  Avx2Sort sort;
  int32_t* out;
  TORCHQUANT_TARGET_AVX2 void operator()(__m256 v, __m256i lanes, BinCodes* r) {
    __m256i bin;
    const auto write =
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(sort(v, lanes, r, &bin))));
    store_left_packed(bin, write, out + r->size);
    r->size += __builtin_popcount(write);
  }
};

// count_avx2's step: lane k increments its bin, or its own "not counted" slot num_bins + k. The
// slots are extracted from the vector in pairs: storing them and loading them back cost more (a
// store each step, where each increment is a store already).
struct Avx2Count {
  Avx2Sort sort;
  int32_t* counts;
  __m256i uncounted;  // num_bins + k in lane k
  // Per lane (as Avx2Sort::first_bin): increments of a bin; slots equal to the step's first.
  __m256i written = _mm256_setzero_si256(), same_as_first = _mm256_setzero_si256();
  TORCHQUANT_TARGET_AVX2 void operator()(__m256 v, __m256i lanes, BinCodes* r) {
    __m256i bin;
    const __m256i write = sort(v, lanes, r, &bin);
    written = _mm256_sub_epi32(written, write);
    const __m256i slot = _mm256_blendv_epi8(uncounted, bin, write);
    const __m256i first = _mm256_broadcastd_epi32(_mm256_castsi256_si128(slot));
    same_as_first = _mm256_sub_epi32(same_as_first, _mm256_cmpeq_epi32(slot, first));
    const __m128i low = _mm256_castsi256_si128(slot), high = _mm256_extracti128_si256(slot, 1);
    const auto s01 = static_cast<uint64_t>(_mm_cvtsi128_si64(low));
    const auto s23 = static_cast<uint64_t>(_mm_extract_epi64(low, 1));
    const auto s45 = static_cast<uint64_t>(_mm_cvtsi128_si64(high));
    const auto s67 = static_cast<uint64_t>(_mm_extract_epi64(high, 1));
    ++counts[static_cast<uint32_t>(s01)];
    ++counts[s01 >> 32];
    ++counts[static_cast<uint32_t>(s23)];
    ++counts[s23 >> 32];
    ++counts[static_cast<uint32_t>(s45)];
    ++counts[s45 >> 32];
    ++counts[static_cast<uint32_t>(s67)];
    ++counts[s67 >> 32];
  }
};

// The sum of the int32 lanes of `v`.
TORCHQUANT_TARGET_AVX2 int64_t lane_sum(__m256i v) {
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  int64_t sum = 0;
  for (int32_t lane : lanes) sum += lane;
  return sum;
}

// Runs `step` (an Avx2Codes or Avx2Count) over data[0, n), 8 elements at a time, and returns what
// it found. Counts kept per lane in int32 (n below 2^34), out of memory: GCC kept a BinCodes field
// the loop added to in memory, a store each step where each increment of a count is one.
template <class Step>
TORCHQUANT_TARGET_AVX2 BinCodes run_steps(const float* data, int64_t n, Step* step) {
  const __m256i all = _mm256_set1_epi32(-1);
  BinCodes r;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) (*step)(_mm256_loadu_ps(data + i), all, &r);
  if (i < n) {
    // Lane k is selected when k < n - i.
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n - i)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    (*step)(_mm256_maskload_ps(data + i, lanes), lanes, &r);
  }
  alignas(32) uint32_t lanes_max[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes_max), step->sort.max_bits);
  for (uint32_t m : lanes_max) r.max_bits = m > r.max_bits ? m : r.max_bits;
  r.first_bin = lane_sum(step->sort.first_bin);
  return r;
}

}  // namespace

TORCHQUANT_TARGET_AVX2 BinCodes bin_codes_avx2(const float* data, int64_t n, const BinRule& rule,
                                               bool skip_zeros, int32_t* out, uint32_t* recheck) {
  Avx2Codes step{{rule, skip_zeros, recheck}, out};
  return run_steps(data, n, &step);
}

TORCHQUANT_TARGET_AVX2 BinCodes count_avx2(const float* data, int64_t n, const BinRule& rule,
                                           bool skip_zeros, int32_t* counts, uint32_t* recheck) {
  const __m256i uncounted =
      _mm256_add_epi32(_mm256_set1_epi32(rule.num_bins), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  Avx2Count step{{rule, skip_zeros, recheck}, counts, uncounted};
  BinCodes r = run_steps(data, n, &step);
  r.size = lane_sum(step.written);
  // Lane 0 is always the same as itself.
  r.repeats = lane_sum(step.same_as_first) - _mm256_extract_epi32(step.same_as_first, 0);
  return r;
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
#endif
