#pragma once
/// \file
/// HistogramCalibrator: a histogram of |x| from 0, and amax by entropy, mse or percentile.

#include <cstdint>
#include <vector>

#include "torchquant/calib/calibrator.h"

namespace torchquant {
namespace calib {

/// One histogram: counts per bin (int64) and float32 bin edges starting at 0.
struct HistogramState {
  std::vector<int64_t> counts;
  /// Usually counts.size() + 1 edges, occasionally one more after growth, exactly as upstream's
  /// float32 arange produces them.
  std::vector<float> edges;
  /// Upstream's `_num_bins` attribute (updated by growth).
  int64_t num_bins = 0;
  /// Zeros seen before the range was known; they belong to the first bin.
  int64_t pending_zeros = 0;
};

/// Histogram of |x| starting at 0, with pytorch_quantization's growth rule: the first batch
/// spreads `num_bins` bins over [0, max|x|]; a later batch with a larger max keeps the bin width
/// and adds bins (edges = float32 arange(0, max + width, width)), the old counts staying in the
/// first bins. Counts are int64 (upstream's float32 counts saturate at 2^24 per bin). Zeros seen
/// before any non-zero value are kept and land in the first bin once the range is known
/// (upstream crashes on an all-zero first batch). Empty batches are ignored; NaN or Inf is an
/// error that leaves the histogram unchanged. With `axis`, one histogram per channel of the kept
/// axes and a per-channel amax (shape like MaxCalibrator's); upstream only supports per tensor.
///
/// \code
///   torchquant::calib::HistogramCalibrator calib(8);
///   calib.collect(torch::randn({1024}));
///   at::Tensor amax = *calib.compute_amax("entropy");
///   at::Tensor p999 = *calib.compute_amax(ComputeAmaxOptions("percentile").percentile(99.9));
/// \endcode
class HistogramCalibrator : public Calibrator {
 public:
  HistogramCalibrator(NumBits num_bits = 8, c10::optional<std::vector<int64_t>> axis = c10::nullopt,
                      bool is_unsigned = false, int64_t num_bins = 2048, bool skip_zeros = false);

  void collect(const at::Tensor& x) override;
  void reset() override;
  /// `options.method`: "entropy", "mse" or "percentile" (required).
  c10::optional<at::Tensor> compute_amax(const ComputeAmaxOptions& options = {}) const override;
  void merge(const Calibrator& other) override;
  std::unique_ptr<Calibrator> clone() const override;
  std::string name() const override { return "HistogramCalibrator"; }
  std::string str() const override;

  /// The histograms: one per tensor, or one per channel (row-major over the kept axes).
  const std::vector<HistogramState>& histograms() const { return hists_; }
  /// The per-tensor histogram (the first channel's with an axis); empty before any batch.
  const HistogramState& histogram() const;
  int64_t initial_num_bins() const { return initial_num_bins_; }
  bool skip_zeros() const { return skip_zeros_; }

 private:
  float search(const HistogramState& h, const ComputeAmaxOptions& options) const;
  /// collect's common case: a contiguous float32 CPU batch for a per-tensor histogram whose
  /// range is known. Counts it and returns true when it fits that range; otherwise (NaN or Inf,
  /// a larger max, any other case) changes nothing and returns false.
  bool collect_in_range(const at::Tensor& x);

  int64_t initial_num_bins_;
  bool skip_zeros_;
  std::vector<HistogramState> hists_;
  std::vector<int64_t> amax_shape_;
  c10::optional<c10::Device> device_;
  std::vector<int64_t> batch_counts_;  // collect_in_range's counts of one batch, kept allocated
};

}  // namespace calib
}  // namespace torchquant
