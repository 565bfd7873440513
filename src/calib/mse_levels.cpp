#include "calib/mse_levels.h"

#include <c10/macros/Macros.h>

#include <algorithm>
#include <cmath>

#include "util/x86_target.h"

namespace torchquant {
namespace calib {
namespace detail {
namespace {

/// A level `lvl` as level_boundary tests it: round_half_even(y) >= lvl, i.e. y above lvl - 0.5,
/// or on it for an even lvl.
struct Threshold {
  explicit Threshold(float lvl)
      : half_below(lvl - 0.5f), even((static_cast<int64_t>(lvl) & 1) == 0) {}
  float half_below;
  bool even;
};

/// Whether centre j (-1 and n are sentinels: never, always) quantizes to the level or more.
bool reached(const LevelGrid& g, int64_t j, const Threshold& t, float scale) {
  const float y = g.probe[j + 1] * scale;
  return (y > t.half_below) | ((y == t.half_below) & t.even);
}

/// ceil(x) clamped to [0, hi] (NaN gives 0), without libm or branches (min/max instructions).
int64_t ceil_clamped(double x, int64_t hi) {
  const double hi_d = static_cast<double>(hi);
  x = 0.0 < x ? x : 0.0;  // NaN -> 0
  x = hi_d < x ? hi_d : x;
  const auto t = static_cast<int64_t>(x);
  return t + (static_cast<double>(t) < x);
}

// level_boundary where the guess `j` was wrong: walks from it (the centres do not decrease).
C10_NOINLINE int64_t walk_to_boundary(const LevelGrid& g, const Threshold& t, float scale,
                                      int64_t j) {
  if (reached(g, j - 1, t, scale)) {
    do --j;
    while (reached(g, j - 1, t, scale));
  } else if (!reached(g, j, t, scale)) {
    // Bounded: with an infinite amax (centres past FLT_MAX / 2 overflow) the scale is 0 and the
    // +inf sentinel gives NaN, which never compares as reached.
    do ++j;
    while (j < g.n && !reached(g, j, t, scale));
  }
  return j;
}

}  // namespace

// The boundary does not depend on the previous level's: a loop over levels is not one chain of
// dependent loads.
int64_t level_boundary(const LevelGrid& g, float lvl, float scale, double guess) {
  const Threshold t(lvl);
  const int64_t j = ceil_clamped(guess, g.n);
  const bool before = reached(g, j - 1, t, scale);
  const bool at = reached(g, j, t, scale);
  if (C10_LIKELY(at && !before)) return j;
  return walk_to_boundary(g, t, scale, j);
}

LevelSums level_sums_scalar(const LevelGrid& g, float first, float max_bound, int64_t end,
                            float scale) {
  const LevelGrid::GuessLine line = g.guess_line(scale);
  LevelSums s;
  int64_t from = 0;
  for (float lvl = first; lvl < max_bound; lvl += 1.0f) {
    const float next = lvl + 1.0f;
    const int64_t stop =
        next >= max_bound
            ? end
            : level_boundary(g, next, scale, static_cast<double>(next) * line.step + line.base);
    const double q = static_cast<double>(lvl / scale);
    const double term = q * ((g.x_hi[stop] - g.x_hi[from]) + (g.x_lo[stop] - g.x_lo[from]));
    s.qqw += q * q * (g.w[stop] - g.w[from]);
    s.qx += term;
    s.qx_size += std::fabs(term);
    from = stop;
  }
  return s;
}

#if defined(__x86_64__)

TORCHQUANT_INTRINSICS_WARNINGS_OFF

namespace {

// Lanes of y whose round_half_even is the level or more (see Threshold).
TORCHQUANT_TARGET_AVX512 __mmask8 reached8(__m256 y, __m256 half_below, __mmask8 even) {
  return static_cast<__mmask8>(_mm256_cmp_ps_mask(y, half_below, _CMP_GT_OQ) |
                               (_mm256_cmp_ps_mask(y, half_below, _CMP_EQ_OQ) & even));
}

// [prev lane 7, v lanes 0..6].
TORCHQUANT_TARGET_AVX512 __m512d shifted_in(__m512d v, __m512d prev) {
  return _mm512_castsi512_pd(
      _mm512_alignr_epi64(_mm512_castpd_si512(v), _mm512_castpd_si512(prev), 7));
}

}  // namespace

// Lane k of a step is level first + base + k. Each lane guesses its boundary, checks it with two
// gathered probes, and gathers the prefix sums there; a level's run starts where the previous
// lane's stops (shifted in from the previous step for lane 0). Lanes past the last level stop
// at `end`, as the last level does, and add nothing.
TORCHQUANT_TARGET_AVX512 bool level_sums_avx512(const LevelGrid& g, float first, float max_bound,
                                                int64_t end, float scale, LevelSums* sums) {
  const LevelGrid::GuessLine line = g.guess_line(scale);
  const __m512d step = _mm512_set1_pd(line.step), base = _mm512_set1_pd(line.base);
  const __m512d hi = _mm512_set1_pd(static_cast<double>(g.n));
  const __m256 scale_v = _mm256_set1_ps(scale);
  const __m512i end_v = _mm512_set1_epi64(end);
  const auto levels = static_cast<int64_t>(max_bound - first);
  __m512d prev_w = _mm512_set1_pd(g.w[0]), prev_hi = _mm512_set1_pd(g.x_hi[0]);
  __m512d prev_lo = _mm512_set1_pd(g.x_lo[0]);
  __m512d qqw = _mm512_setzero_pd(), qx = qqw, qx_size = qqw;
  const __m256 lane_f = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i lane_i = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t k = 0; k < levels; k += 8) {
    const __m256 lvl = _mm256_add_ps(_mm256_set1_ps(first + static_cast<float>(k)), lane_f);
    const __m256 next = _mm256_add_ps(lvl, _mm256_set1_ps(1.0f));
    // The last level and the lanes past it stop at `end`; the lanes past it add nothing.
    const __mmask8 at_end = _mm512_cmpge_epi64_mask(lane_i, _mm512_set1_epi64(levels - 1 - k));
    const __mmask8 active = _mm512_cmplt_epi64_mask(lane_i, _mm512_set1_epi64(levels - k));
    __m512d guess = _mm512_fmadd_pd(_mm512_cvtps_pd(next), step, base);
    guess = _mm512_min_pd(_mm512_max_pd(guess, _mm512_setzero_pd()), hi);  // NaN -> 0
    const __m512i j = _mm512_cvttpd_epi64(_mm512_roundscale_pd(guess, _MM_FROUND_TO_POS_INF));
    // probe[j] is centre j - 1, probe[j + 1] centre j.
    const __m256 before = _mm256_mul_ps(_mm512_i64gather_ps(j, g.probe, 4), scale_v);
    const __m256 at = _mm256_mul_ps(
        _mm512_i64gather_ps(_mm512_add_epi64(j, _mm512_set1_epi64(1)), g.probe, 4), scale_v);
    const __m256 half_below = _mm256_sub_ps(next, _mm256_set1_ps(0.5f));
    const __m256i odd = _mm256_and_si256(_mm256_cvttps_epi32(next), _mm256_set1_epi32(1));
    const __mmask8 even = _mm256_cmpeq_epi32_mask(odd, _mm256_setzero_si256());
    const auto right =
        static_cast<__mmask8>(reached8(at, half_below, even) & ~reached8(before, half_below, even));
    if (static_cast<__mmask8>(~(right | at_end)) != 0) return false;
    const __m512i stop = _mm512_mask_blend_epi64(at_end, j, end_v);
    const __m512d w = _mm512_i64gather_pd(stop, g.w, 8);
    const __m512d x_hi = _mm512_i64gather_pd(stop, g.x_hi, 8);
    const __m512d x_lo = _mm512_i64gather_pd(stop, g.x_lo, 8);
    // Each level's run starts where the one before stops.
    const __m512d q = _mm512_cvtps_pd(_mm256_div_ps(lvl, scale_v));
    const __m512d x = _mm512_add_pd(_mm512_sub_pd(x_hi, shifted_in(x_hi, prev_hi)),
                                    _mm512_sub_pd(x_lo, shifted_in(x_lo, prev_lo)));
    const __m512d term = _mm512_mul_pd(q, x);
    const __m512d qqw_term =
        _mm512_mul_pd(_mm512_mul_pd(q, q), _mm512_sub_pd(w, shifted_in(w, prev_w)));
    qqw = _mm512_mask_add_pd(qqw, active, qqw, qqw_term);
    qx = _mm512_mask_add_pd(qx, active, qx, term);
    qx_size = _mm512_mask_add_pd(qx_size, active, qx_size, _mm512_abs_pd(term));
    prev_w = w;
    prev_hi = x_hi;
    prev_lo = x_lo;
  }
  sums->qqw = _mm512_reduce_add_pd(qqw);
  sums->qx = _mm512_reduce_add_pd(qx);
  sums->qx_size = _mm512_reduce_add_pd(qx_size);
  return true;
}

namespace {

// Lanes (as all-ones masks) of y whose round_half_even is the level or more (see Threshold).
TORCHQUANT_TARGET_AVX2 __m128 reached4(__m128 y, __m128 half_below, __m128 even) {
  return _mm_or_ps(_mm_cmpgt_ps(y, half_below), _mm_and_ps(_mm_cmpeq_ps(y, half_below), even));
}

// [prev lane 3, v lanes 0..2].
TORCHQUANT_TARGET_AVX2 __m256d shifted_in4(__m256d v, __m256d prev) {
  return _mm256_blend_pd(_mm256_permute4x64_pd(v, 0x90), _mm256_permute4x64_pd(prev, 0xff), 1);
}

}  // namespace

// As level_sums_avx512, 4 levels a step: indices as int32 (n < 2^31), gathers with them.
TORCHQUANT_TARGET_AVX2 bool level_sums_avx2(const LevelGrid& g, float first, float max_bound,
                                            int64_t end, float scale, LevelSums* sums) {
  if (g.n >= (int64_t{1} << 31) - 1) return false;
  const LevelGrid::GuessLine line = g.guess_line(scale);
  const __m256d step = _mm256_set1_pd(line.step), base = _mm256_set1_pd(line.base);
  const __m256d hi = _mm256_set1_pd(static_cast<double>(g.n));
  const __m128 scale_v = _mm_set1_ps(scale);
  const __m128i end_v = _mm_set1_epi32(static_cast<int32_t>(end));
  const auto levels = static_cast<int64_t>(max_bound - first);
  __m256d prev_w = _mm256_set1_pd(g.w[0]), prev_hi = _mm256_set1_pd(g.x_hi[0]);
  __m256d prev_lo = _mm256_set1_pd(g.x_lo[0]);
  __m256d qqw = _mm256_setzero_pd(), qx = qqw, qx_size = qqw;
  const __m256d sign = _mm256_set1_pd(-0.0);
  const __m128 lane_f = _mm_setr_ps(0, 1, 2, 3);
  const __m128i lane_i = _mm_setr_epi32(0, 1, 2, 3);
  for (int64_t k = 0; k < levels; k += 4) {
    const __m128 lvl = _mm_add_ps(_mm_set1_ps(first + static_cast<float>(k)), lane_f);
    const __m128 next = _mm_add_ps(lvl, _mm_set1_ps(1.0f));
    // The last level and the lanes past it stop at `end`; the lanes past it add nothing.
    const auto last = static_cast<int32_t>(std::min<int64_t>(levels - 1 - k, 4));
    const __m128i at_end = _mm_cmpgt_epi32(lane_i, _mm_set1_epi32(last - 1));
    const __m256d active = _mm256_castsi256_pd(
        _mm256_cvtepi32_epi64(_mm_cmpgt_epi32(_mm_set1_epi32(last + 1), lane_i)));
    __m256d guess = _mm256_add_pd(_mm256_mul_pd(_mm256_cvtps_pd(next), step), base);
    guess = _mm256_min_pd(_mm256_max_pd(guess, _mm256_setzero_pd()), hi);  // NaN -> 0
    const __m128i j =
        _mm256_cvttpd_epi32(_mm256_round_pd(guess, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC));
    const __m128 before = _mm_mul_ps(_mm_i32gather_ps(g.probe, j, 4), scale_v);
    const __m128 at =
        _mm_mul_ps(_mm_i32gather_ps(g.probe, _mm_add_epi32(j, _mm_set1_epi32(1)), 4), scale_v);
    const __m128 half_below = _mm_sub_ps(next, _mm_set1_ps(0.5f));
    const __m128 even = _mm_castsi128_ps(_mm_cmpeq_epi32(
        _mm_and_si128(_mm_cvttps_epi32(next), _mm_set1_epi32(1)), _mm_setzero_si128()));
    const __m128 right =
        _mm_andnot_ps(reached4(before, half_below, even), reached4(at, half_below, even));
    if (_mm_movemask_ps(_mm_or_ps(right, _mm_castsi128_ps(at_end))) != 0xf) return false;
    const __m128i stop = _mm_blendv_epi8(j, end_v, at_end);
    const __m256d w = _mm256_i32gather_pd(g.w, stop, 8);
    const __m256d x_hi = _mm256_i32gather_pd(g.x_hi, stop, 8);
    const __m256d x_lo = _mm256_i32gather_pd(g.x_lo, stop, 8);
    const __m256d q = _mm256_cvtps_pd(_mm_div_ps(lvl, scale_v));
    const __m256d x = _mm256_add_pd(_mm256_sub_pd(x_hi, shifted_in4(x_hi, prev_hi)),
                                    _mm256_sub_pd(x_lo, shifted_in4(x_lo, prev_lo)));
    const __m256d term = _mm256_and_pd(_mm256_mul_pd(q, x), active);
    qqw = _mm256_add_pd(qqw, _mm256_and_pd(_mm256_mul_pd(_mm256_mul_pd(q, q),
                                                         _mm256_sub_pd(w, shifted_in4(w, prev_w))),
                                           active));
    qx = _mm256_add_pd(qx, term);
    qx_size = _mm256_add_pd(qx_size, _mm256_andnot_pd(sign, term));
    prev_w = w;
    prev_hi = x_hi;
    prev_lo = x_lo;
  }
  alignas(32) double lanes[3][4];
  _mm256_store_pd(lanes[0], qqw);
  _mm256_store_pd(lanes[1], qx);
  _mm256_store_pd(lanes[2], qx_size);
  sums->qqw = (lanes[0][0] + lanes[0][1]) + (lanes[0][2] + lanes[0][3]);
  sums->qx = (lanes[1][0] + lanes[1][1]) + (lanes[1][2] + lanes[1][3]);
  sums->qx_size = (lanes[2][0] + lanes[2][1]) + (lanes[2][2] + lanes[2][3]);
  return true;
}

TORCHQUANT_INTRINSICS_WARNINGS_ON

#endif

LevelSums level_sums(torchquant::detail::CpuIsa isa, const LevelGrid& g, float first,
                     float max_bound, int64_t end, float scale) {
#if defined(__x86_64__)
  LevelSums sums;
  if (isa == torchquant::detail::CpuIsa::kAvx512 &&
      level_sums_avx512(g, first, max_bound, end, scale, &sums)) {
    return sums;
  }
  if (isa == torchquant::detail::CpuIsa::kAvx2 &&
      level_sums_avx2(g, first, max_bound, end, scale, &sums)) {
    return sums;
  }
#endif
  (void)isa;
  return level_sums_scalar(g, first, max_bound, end, scale);
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
