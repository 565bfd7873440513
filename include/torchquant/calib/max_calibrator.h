#pragma once
/// \file
/// MaxCalibrator: the running max of |x| per kept axis.

#include <vector>

#include "torchquant/calib/calibrator.h"

namespace torchquant {
namespace calib {

/// Running max of |x| over all dims not in `axis` (kept with size 1, e.g. [C,1,1,1] for axis 0).
/// The amax shape may not change between batches. With `track_amax`, the per-batch amax history
/// is kept (as copies; upstream's first entry aliases the running max, a bug not copied).
///
/// \code
///   torchquant::calib::MaxCalibrator calib(8, std::vector<int64_t>{1}, false);
///   calib.collect(torch::randn({4, 6, 5, 5}));
///   at::Tensor amax = *calib.compute_amax();  // shape [1, 6, 1, 1]
/// \endcode
class MaxCalibrator : public Calibrator {
 public:
  MaxCalibrator(NumBits num_bits = 8, c10::optional<std::vector<int64_t>> axis = c10::nullopt,
                bool is_unsigned = false, bool track_amax = false);

  void collect(const at::Tensor& x) override;
  void reset() override;
  c10::optional<at::Tensor> compute_amax(const ComputeAmaxOptions& options = {}) const override;
  void merge(const Calibrator& other) override;
  std::unique_ptr<Calibrator> clone() const override;
  std::string name() const override { return "MaxCalibrator"; }
  std::string str() const override;

  /// Per-batch amax history (only with track_amax).
  const std::vector<at::Tensor>& amaxs() const { return amaxs_; }
  bool track_amax() const { return track_amax_; }

 private:
  void accumulate(const at::Tensor& local_amax, const char* where);
  at::Tensor local_amax(const at::Tensor& x, const std::vector<int64_t>& dims) const;

  bool track_amax_;
  at::Tensor calib_amax_;
  std::vector<at::Tensor> amaxs_;
};

}  // namespace calib
}  // namespace torchquant
