#pragma once
// The histogram pass's per-element work: which bin each |x| of a block falls in, at::histc's
// float32 rule without its division, in one vector loop per instruction set. Internal header.

#include <c10/macros/Macros.h>

#include <cstdint>

#include "util/cpu_isa.h"

namespace torchquant {
namespace calib {
namespace detail {

/// at::histc's float32 bin rule for |x| <= top: int((|x| * num_bins) / top), |x| == top in the
/// last bin. The clamp keeps the cast defined where the rule overflows (a top near FLT_MAX: the
/// product is inf); an element that overflows lands in the last bin.
int32_t exact_bin(float a, float top, float bins_f, int32_t num_bins);

/// The bin rule without its division (a vector division issues once per 5 or more cycles, more
/// than the rest of the pass's arithmetic together):
/// q' = (|x| * num_bins) * (1 / top) is within num_bins * 2^-22 of the rule's quotient q (both
/// roundings of the same product, each off by at most 2^-24 relative, plus 1 / top's rounding),
/// so int(q') == int(q) whenever q' is further than `margin` = num_bins * 2^-20 from an integer.
/// The few elements closer than that (about 2 * margin of them) are marked and recomputed with
/// exact_bin. With an unusable reciprocal (top or 1 / top subnormal or inf) or a margin too wide,
/// every element is marked.
struct BinRule {
  float top, bins_f, inv_top, margin;
  int32_t num_bins;
  BinRule(float top, int64_t bins);
  /// The bin of a code written by a BinCodesFn: the code itself, or for a marked one (sign bit
  /// set, the other bits those of |x|) exact_bin of that |x|.
  int32_t resolve(int32_t code) const { return C10_UNLIKELY(code < 0) ? exact(code) : code; }

 private:
  // Out of line so that the rare recheck stays a branch.
  C10_NOINLINE int32_t exact(int32_t code) const;
};

/// What a BinCodesFn found in a block.
struct BinCodes {
  int64_t size = 0;       // codes written
  int64_t first_bin = 0;  // elements of bin 0 counted here instead of written as codes
  uint32_t max_bits = 0;  // max of the |x| bit patterns (above 0x7f7fffff: a NaN or Inf)
};

/// Writes one code per element of `data[0, n)` still to be counted into `out` (which must hold
/// n + kCodeSlack of them): a bin index, `num_bins` for an element not counted (|x| > top, NaN,
/// a skipped zero), or a marked code for BinRule::resolve. A version may count elements that are
/// surely in bin 0 itself and drop uncounted ones instead of writing them (the AVX-512 one does:
/// the zeros after a ReLU are often half of an activation).
using BinCodesFn = BinCodes (*)(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                                int32_t* out);
constexpr int64_t kCodeSlack = 16;

/// The version for an instruction set.
BinCodesFn bin_codes_for(torchquant::detail::CpuIsa isa);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
