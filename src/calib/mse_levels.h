#pragma once
// The inner loop of the mse amax search (amax_search.cpp): for one candidate scale, where the
// quantization levels start along the histogram's centres and what each level's run of centres
// adds to the score, from prefix sums. A scalar version, an AVX-512 one (8 levels a step) and an
// AVX2 one (4).
// Internal header.

#include <cstdint>

#include "util/cpu_isa.h"

namespace torchquant {
namespace calib {
namespace detail {

/// The centres of a histogram and prefix sums over them, as the mse search keeps them.
struct LevelGrid {
  const float* probe = nullptr;  // n + 2 values: -inf, the centres (non-decreasing), +inf
  const double* w = nullptr;     // n + 1 prefix sums of the counts
  const double* x_hi = nullptr;  // n + 1 compensated prefix sums of counts * centre (hi + lo)
  const double* x_lo = nullptr;
  int64_t n = 0;
  // Centre j is about first_centre + j / inv_spacing (inv_spacing = 0 when unknown): guesses the
  // level boundaries, which are then checked exactly.
  double first_centre = 0.0;
  double inv_spacing = 0.0;
  /// The guess of level_boundary's index for level `lvl` at `scale` is lvl * step + base.
  struct GuessLine {
    double step, base;
  };
  GuessLine guess_line(float scale) const {
    const double inv_scale = 1.0 / static_cast<double>(scale);
    return {inv_spacing * inv_scale, -(0.5 * inv_scale + first_centre) * inv_spacing};
  }
  double guess(float lvl, float scale) const {
    const GuessLine line = guess_line(scale);
    return static_cast<double>(lvl) * line.step + line.base;
  }
};

/// The first centre index j whose float32 round_half_even(centre * scale) is `lvl` or more (n if
/// none), found from `guess` (nearly always right: two probes and no walk). Exact.
int64_t level_boundary(const LevelGrid& g, float lvl, float scale, double guess);

/// sum over the levels lvl = first, first + 1, ..., max_bound - 1 (max_bound > first) of
///   qqw += q^2 * W, qx += q * X, qx_size += |q * X|,  q = float32(lvl / scale)
/// where W and X are the counts and counts * centre of the centres that quantize to lvl (the last
/// level takes every centre up to `end`).
struct LevelSums {
  double qqw = 0.0, qx = 0.0, qx_size = 0.0;
};
LevelSums level_sums_scalar(const LevelGrid& g, float first, float max_bound, int64_t end,
                            float scale);
/// The same sums, 8 (AVX-512) or 4 (AVX2) levels a step (x86-64 only; summed in another order).
/// Return false without sums when a level's guessed boundary was wrong (the caller then uses the
/// scalar version, which walks to the right one).
bool level_sums_avx512(const LevelGrid& g, float first, float max_bound, int64_t end, float scale,
                       LevelSums* sums);
bool level_sums_avx2(const LevelGrid& g, float first, float max_bound, int64_t end, float scale,
                     LevelSums* sums);
/// The version for an instruction set.
LevelSums level_sums(torchquant::detail::CpuIsa isa, const LevelGrid& g, float first,
                     float max_bound, int64_t end, float scale);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
