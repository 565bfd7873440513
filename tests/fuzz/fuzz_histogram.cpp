// HistogramCalibrator::collect over one to three decoded batches: a batch is either collected or
// refused with a c10::Error that leaves the histogram as it was; the counts always sum to the
// elements collected (zeros not counted with skip_zeros), and growing the range keeps the old
// counts (the total after each batch is the total before plus that batch).

#include <ATen/Functions.h>
#include <torchquant/calib/histogram_calibrator.h>

#include <numeric>
#include <vector>

#include "fuzz_common.h"

namespace {

int64_t total(const torchquant::calib::HistogramState& h) {
  return std::accumulate(h.counts.begin(), h.counts.end(), int64_t{0}) + h.pending_zeros;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  torchquant::fuzz::Bytes in(data, size);
  const bool skip_zeros = in.flag();
  const int64_t num_bins = in.range(1, 64) * 8;
  torchquant::calib::HistogramCalibrator calib(8, c10::nullopt, false, num_bins, skip_zeros);
  const int64_t batches = in.range(1, 3);
  int64_t expected = 0;
  for (int64_t b = 0; b < batches && in.left() > 0; ++b) {
    const int64_t n = in.range(0, 40);
    std::vector<float> values;
    const uint8_t kind = in.u8();
    for (int64_t i = 0; i < n; ++i) {
      // Mostly small values and zeros, sometimes any bit pattern (NaN, Inf, huge, subnormal).
      values.push_back(kind & 1 ? in.f32() : static_cast<float>(in.range(0, 255)) * 0.25f);
    }
    const at::Tensor x = at::tensor(values);
    const int64_t counted = skip_zeros ? x.ne(0).sum().item<int64_t>() : n;
    const int64_t before = total(calib.histogram());
    bool accepted = false;
    torchquant::fuzz::expect_only_c10_errors([&] {
      calib.collect(x);
      accepted = true;
    });
    const int64_t after = total(calib.histogram());
    if (accepted) {
      expected += counted;
      TORCHQUANT_FUZZ_ASSERT(after == before + counted);
    } else {
      TORCHQUANT_FUZZ_ASSERT(after == before);  // a refused batch changes nothing
    }
    TORCHQUANT_FUZZ_ASSERT(after == expected);
    const auto& h = calib.histogram();
    TORCHQUANT_FUZZ_ASSERT(h.counts.empty() || h.edges.size() >= h.counts.size() + 1);
  }
  return 0;
}
