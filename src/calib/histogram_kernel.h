#pragma once
// CPU kernels of the calibrators on float32 data: max |x|, and a histogram pass (which also
// finds max |x|) with per-thread private counts. Internal header.

#include <cstdint>

namespace torchquant {
namespace calib {
namespace detail {

/// max |x| over `n` floats and whether all of them are finite.
struct AbsMax {
  float max = 0.f;
  bool finite = true;
};
AbsMax abs_max(const float* data, int64_t n);
/// abs_max on the calling thread only.
AbsMax abs_max_serial(const float* data, int64_t n);

/// Adds |x| of `n` floats into `counts` (`num_bins` int64 bins over [0, top]) with at::histc's
/// float32 rule: bin = int((|x| * num_bins) / top), |x| == top in the last bin, |x| > top dropped.
/// Exact zeros are skipped when `skip_zeros`. Returns max |x| of all `n` values (counted or not)
/// in the same pass. Parallel over at::parallel_for; deterministic.
AbsMax accumulate_histogram(const float* data, int64_t n, float top, int64_t num_bins,
                            bool skip_zeros, int64_t* counts);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
