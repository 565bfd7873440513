#pragma once
// The histogram pass's per-element work: which bin each |x| of a block falls in, at::histc's
// float32 rule without its division, in one vector loop per instruction set. Internal header.

#include <cstdint>

#include "calib/abs_max_bits.h"
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
/// The few elements closer than that (about 2 * margin of them) are set aside and recomputed with
/// exact_bin. With an unusable reciprocal (top or 1 / top subnormal or inf) or a margin too wide,
/// every element is. Every version clamps q' to `last` = num_bins - 1/2: a counted element
/// (|x| <= top) with q' above it is in the last bin for sure, |x| == top included (on the
/// boundary q = num_bins, a recheck each otherwise: a third of a hardtanh's outputs, all of a
/// constant tensor's).
struct BinRule {
  float top, bins_f, inv_top, margin, last;
  int32_t num_bins;
  BinRule(float top, int64_t bins);
  /// The bin of an element a BinCodesFn wrote to `recheck`, from its |x| bits: exact_bin.
  int32_t exact(uint32_t abs_bits) const;
};

/// What a BinCodesFn found in a block.
struct BinCodes {
  int64_t size = 0;       // codes written to `out` (CountFn: bins incremented)
  int64_t rechecks = 0;   // |x| bit patterns written to `recheck`
  int64_t first_bin = 0;  // elements of bin 0 counted here instead of written as codes
  uint32_t max_bits = 0;  // max of the |x| bit patterns (above 0x7f7fffff: a NaN or Inf)
  int64_t repeats = 0;    // CountFn only: see there
};

/// Sorts the elements of `data[0, n)` for counting: an element within the rule's margin of a bin
/// boundary has its |x| bits written to `recheck` (BinRule::exact gives its bin); every other
/// element still to be counted has its bin written to `out`, and an element not counted (|x| >
/// top, NaN, a skipped zero) `num_bins`. Both buffers must hold n + kCodeSlack entries. Codes in
/// `out` are always in [0, num_bins], so counting them needs no branch. A version may count exact
/// zeros itself (in `first_bin`) and drop uncounted elements instead of writing them (the vector
/// ones do: the zeros after a ReLU are often half of an activation).
using BinCodesFn = BinCodes (*)(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                                int32_t* out, uint32_t* recheck);
constexpr int64_t kCodeSlack = 16;

/// The version for an instruction set.
BinCodesFn bin_codes_for(torchquant::detail::CpuIsa isa);

/// Counts the elements of `data[0, n)` straight into int32 `counts` (num_bins + kUncountedSlots
/// of them): the k-th element of each 8 increments its bin or, when not counted there, slot
/// num_bins + k (one per lane: uncounted elements make no chain of increments of one counter).
/// Otherwise as a BinCodesFn: `size` is the number of bins incremented, exact zeros are counted in
/// `first_bin`, elements near a bin boundary written to `recheck` (n + kCodeSlack entries);
/// `repeats` tells how many elements went to the same slot as the first of their 8. Computing 8
/// bins and counting them at once lets the increments overlap the bins' arithmetic, which a block
/// of codes and then a block of increments did not; but one histogram, no copies, makes each
/// repeat of a bin within 8 elements wait for the last increment, and the uncounted elements
/// (zeros after a ReLU) cost increments the codes skip: histogram_serial takes codes where
/// `repeats` and `size` say so.
using CountFn = BinCodes (*)(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                             int32_t* counts, uint32_t* recheck);
constexpr int64_t kUncountedSlots = 8;

/// The counting version for an instruction set, or nullptr where the pass always writes codes
/// and counts them: only AVX2 has one (found on a Zen 2 with 32 KiB of L1 data cache, where four
/// 8 KiB sub-histograms and the streamed data did not stay cached together; the AVX-512 version,
/// measured on a Xeon with two store ports and 48 KiB, met its goal with codes).
CountFn count_for(torchquant::detail::CpuIsa isa);

/// The versions (call them through bin_codes_for, which knows what the CPU runs). The scalar one
/// writes a code for every element (`num_bins` for one it writes to `recheck`); the AVX2 and
/// AVX-512 ones (x86-64 only) count exact zeros themselves and write only the codes still to
/// count, left-packed.
BinCodes bin_codes_scalar(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          int32_t* out, uint32_t* recheck);
BinCodes bin_codes_avx2(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                        int32_t* out, uint32_t* recheck);
BinCodes bin_codes_avx512(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          int32_t* out, uint32_t* recheck);
BinCodes count_avx2(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                    int32_t* counts, uint32_t* recheck);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
