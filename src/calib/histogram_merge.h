#pragma once
// Merging two histograms of |x| (HistogramCalibrator::merge). Internal header.

#include "torchquant/calib/histogram_calibrator.h"

namespace torchquant {
namespace calib {
namespace detail {

/// Adds `other` into `into`. When one grid's edges are a prefix of the other's (same width, as
/// when both calibrators started from the same first-batch range) the counts add bin by bin and
/// the result is exactly the histogram of all the data. Otherwise the finer histogram is re-binned
/// onto the coarser grid (grown as needed with the collection rule), each source bin going to the
/// target bin that holds its centre: an approximation documented in docs/calibration.md.
void merge_histogram(HistogramState* into, const HistogramState& other);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
