#pragma once
// The amax searches of pytorch_quantization 2.2.1's HistogramCalibrator (entropy, mse and
// percentile) over a histogram of |x|: plain C++, no torch. Internal header.
//
// Each search returns exactly the amax that upstream's Python returns for the same histogram
// (verified on the reference cases and against literal ports of the Python loops). The entropy and
// mse searches get their speed from prefix sums; where two candidates come too close for the
// prefix-sum scores to rank them reliably, those candidates are re-scored with upstream's own
// arithmetic (numpy's pairwise float64 sums for entropy, PyTorch's float32 cascade sum for mse),
// so near-ties resolve as upstream resolves them.
//
// Shared conventions:
// - `counts[j]` values fell in bin j, which spans [edges[j], edges[j + 1]). At least
//   num_bins + 1 edges are required; extra trailing edges (growth by float32 arange can leave one
//   more edge than bins + 1) are never read, see mse_amax. Edges are assumed non-decreasing (not
//   checked) and the total count below 2^53.
// - A histogram with no bins or no counts has no amax: the searches return NaN and the caller
//   decides what that means.
// - Invalid arguments throw std::invalid_argument whose message starts with the function name.

#include <cstdint>
#include <vector>

namespace torchquant {
namespace calib {
namespace detail {

/// A read-only view of a histogram: `num_bins` counts and `num_edges` (>= num_bins + 1) edges.
struct HistogramView {
  const int64_t* counts = nullptr;
  int64_t num_bins = 0;
  const float* edges = nullptr;
  int64_t num_edges = 0;
};

/// TensorRT's KL-divergence calibration, as pytorch_quantization's `_compute_amax_entropy`.
///
/// With bins = counts and bins[0] replaced by bins[1], each candidate i in
/// range(start_bin, num_bins + 1, stride) compares the reference distribution bins[:i] (the
/// counts of bins[i:] added to its last bin) with bins[:i] merged into 2^(num_bits - 1 + unsigned)
/// quantized bins (source bin j goes to floor(j * nbins / i)), each merged count spread evenly
/// over the non-zero source bins. The candidate with the smallest KL divergence wins, the LAST
/// one on a tie, and the amax is its right edge edges[i].
///
/// Beyond upstream (which crashes): no candidate in range (start_bin > num_bins, or start_bin = 0
/// with stride > num_bins) searches the single candidate num_bins, i.e. returns the histogram's
/// upper edge; the candidate i = 0 (an empty reference) is skipped; a one-bin histogram keeps its
/// bin 0 (there is no bins[1]). As upstream: a candidate whose kept bins hold no count at all has
/// an undefined (NaN) divergence and, as numpy's argmin picks NaN first, the last such candidate
/// wins. Counts are int64 (upstream: int32).
///
/// \code
///   std::vector<int64_t> counts = ...;  // 2048 bins
///   std::vector<float> edges = ...;     // 2049 edges from 0
///   float amax = entropy_amax(counts, edges, /*num_bits=*/8, /*is_unsigned=*/false);
/// \endcode
///
/// \throws std::invalid_argument unless num_bits is in [1, 16], stride >= 1, start_bin >= 0,
///         counts are non-negative and there are at least num_bins + 1 edges.
float entropy_amax(const HistogramView& hist, int64_t num_bits, bool is_unsigned,
                   int64_t stride = 1, int64_t start_bin = 128);
float entropy_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
                   int64_t num_bits, bool is_unsigned, int64_t stride = 1, int64_t start_bin = 128);

/// Minimum mean squared quantization error, as pytorch_quantization's `_compute_amax_mse`.
///
/// With the float32 bin centres c = (edges[1:] + edges[:-1]) / 2, each candidate i in
/// range(start_bin, num_bins, stride) fake-quantizes every centre with amax = c[i]
/// (narrow range, float32, round half to even, amax <= 2^-24 quantizes to 0) and scores
/// mean((q - c)^2 * counts) in float32. The FIRST candidate with the smallest score wins and the
/// amax is its centre c[i].
///
/// Beyond upstream: start_bin >= num_bins (upstream crashes) searches the single candidate
/// num_bins - 1. When growth left one edge more than num_bins + 1, upstream crashes on the size
/// mismatch; here the centres come from the first num_bins + 1 edges (the edges that bound the
/// counted bins by index, as entropy and percentile read them), the extra edge is ignored. Near
/// ties are ranked with PyTorch's 8-lane float32 sum (its AVX2 and default CPU kernels, which
/// PyTorch also runs on AVX512 machines).
///
/// \code
///   float amax = mse_amax(counts, edges, /*num_bits=*/8, /*is_unsigned=*/false,
///                         /*stride=*/1, /*start_bin=*/128);
/// \endcode
///
/// \throws std::invalid_argument unless num_bits is in [2, 16] (signed) or [1, 16] (unsigned),
///         stride >= 1, start_bin >= 0, counts are non-negative and there are enough edges.
float mse_amax(const HistogramView& hist, int64_t num_bits, bool is_unsigned, int64_t stride = 1,
               int64_t start_bin = 128);
float mse_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
               int64_t num_bits, bool is_unsigned, int64_t stride = 1, int64_t start_bin = 128);

/// The amax that keeps `percentile` percent of the counts, as pytorch_quantization's
/// `_compute_amax_percentile`: cdf = cumsum(counts / total) in float64, idx = the first index with
/// cdf[idx] >= percentile / 100 (num_bins if none), amax = edges[idx] (a left edge).
///
/// \code
///   float amax = percentile_amax(counts, edges, 99.99);
/// \endcode
///
/// \throws std::invalid_argument unless percentile is in [0, 100] (NaN is rejected; upstream lets
///         it through and returns the last edge), counts are non-negative and there are enough
///         edges.
float percentile_amax(const HistogramView& hist, double percentile);
float percentile_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
                      double percentile);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
