// HistogramCalibrator::collect over one to three decoded batches, per tensor or per channel (axis
// 0 of [C, k] batches), then compute_amax with a decoded method and options:
//   - a batch with NaN or Inf, or (per channel) with another number of channels, is refused with
//     a c10::Error; a batch that would grow the histogram past its bin limit may be refused (the
//     error says so); any other batch is collected. A refused batch changes nothing.
//   - the counts (pending zeros included) always sum to the elements collected (zeros not counted
//     with skip_zeros), and growing the range keeps the old counts in the first bins.
//   - entropy, mse or percentile gives finite values in [0, top edge] for any valid options (mse
//     gives inf, as upstream, once the range passes FLT_MAX / 2).
//   - differential: the counting pass's version picked by the input's size (scalar, AVX2 or
//     AVX-512, where the CPU runs it) accepts the same batches and builds the same histograms as
//     the scalar version on the same batches.

#include <ATen/Functions.h>
#include <torchquant/calib/histogram_calibrator.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "fuzz_common.h"
#include "util/cpu_isa.h"

namespace {

using torchquant::calib::HistogramState;
using torchquant::detail::CpuIsa;
using torchquant::detail::ScopedCpuIsaCap;

size_t bins_of(const std::vector<HistogramState>& hists) {
  size_t bins = 0;
  for (const auto& h : hists) bins += h.counts.size();
  return bins;
}

bool same(const std::vector<HistogramState>& a, const std::vector<HistogramState>& b) {
  if (a.size() != b.size()) return false;
  for (size_t c = 0; c < a.size(); ++c) {
    if (a[c].counts != b[c].counts || a[c].edges != b[c].edges ||
        a[c].pending_zeros != b[c].pending_zeros) {
      return false;
    }
  }
  return true;
}

// Collects `x` into `calib` with the counting pass capped at `isa`; whether it was accepted.
bool collect_with(torchquant::calib::HistogramCalibrator& calib, const at::Tensor& x, CpuIsa isa) {
  ScopedCpuIsaCap cap(isa);
  try {
    calib.collect(x);
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

int64_t total(const std::vector<HistogramState>& hists) {
  int64_t sum = 0;
  for (const auto& h : hists) {
    sum += std::accumulate(h.counts.begin(), h.counts.end(), int64_t{0}) + h.pending_zeros;
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  torchquant::fuzz::Bytes in(data, size);
  const bool skip_zeros = in.flag();
  const int64_t num_bins = in.range(1, 64) * 8;
  const bool per_channel = in.flag();
  const c10::optional<std::vector<int64_t>> axis =
      per_channel ? c10::optional<std::vector<int64_t>>({0}) : c10::nullopt;
  torchquant::calib::HistogramCalibrator calib(8, axis, false, num_bins, skip_zeros);
  torchquant::calib::HistogramCalibrator scalar(8, axis, false, num_bins, skip_zeros);
  const auto isa = static_cast<CpuIsa>(size % 3);  // from the size: the decoding stays as it was
  bool differential = isa != CpuIsa::kScalar;      // (scalar against itself proves nothing)
  const int64_t batches = in.range(1, 3);
  int64_t expected = 0;
  int64_t channels_seen = 0;  // channels of the collected histograms (0: none yet)
  for (int64_t b = 0; b < batches && in.left() > 0; ++b) {
    const int64_t channels = per_channel ? in.range(1, 3) : 1;
    const int64_t n = in.range(0, 40) / channels * channels;
    std::vector<float> values;
    const uint8_t kind = in.u8();
    for (int64_t i = 0; i < n; ++i) {
      // Mostly small values and zeros, sometimes any bit pattern (NaN, Inf, huge, subnormal).
      values.push_back(kind & 1 ? in.f32() : static_cast<float>(in.range(0, 255)) * 0.25f);
    }
    at::Tensor x = at::tensor(values);
    if (per_channel) x = x.reshape({channels, n / channels});
    const int64_t counted = skip_zeros ? x.ne(0).sum().item<int64_t>() : n;
    const bool finite = x.isfinite().all().item<bool>();
    const bool same_channels = channels_seen == 0 || channels == channels_seen;
    const std::vector<HistogramState> before = calib.histograms();
    const float top_before =
        before.empty() || before[0].edges.empty() ? 0.f : before[0].edges.back();
    bool accepted = false;
    try {
      ScopedCpuIsaCap cap(isa);
      calib.collect(x);
      accepted = true;
    } catch (const c10::Error& e) {
      // Refused: only for NaN / Inf, a change of channels or a histogram that would grow too far.
      const bool too_far = std::strstr(e.what(), "would grow the histogram") != nullptr;
      TORCHQUANT_FUZZ_ASSERT(n > 0 && (!finite || !same_channels || too_far));
    }
    if (n > 0 && (!finite || !same_channels)) TORCHQUANT_FUZZ_ASSERT(!accepted);
    const std::vector<HistogramState>& after = calib.histograms();
    if (!accepted) {  // a refused batch changes nothing
      TORCHQUANT_FUZZ_ASSERT(after.size() == before.size());
      for (size_t c = 0; c < after.size(); ++c) {
        TORCHQUANT_FUZZ_ASSERT(after[c].counts == before[c].counts &&
                               after[c].edges == before[c].edges &&
                               after[c].pending_zeros == before[c].pending_zeros);
      }
    } else {
      expected += counted;
      if (n > 0) channels_seen = channels;
      TORCHQUANT_FUZZ_ASSERT(total(after) == total(before) + counted);
      for (size_t c = 0; c < before.size(); ++c) {  // old counts kept in the first bins
        TORCHQUANT_FUZZ_ASSERT(after[c].counts.size() >= before[c].counts.size());
        for (size_t i = 0; i < before[c].counts.size(); ++i) {
          TORCHQUANT_FUZZ_ASSERT(after[c].counts[i] >= before[c].counts[i]);
        }
      }
      if (!after.empty() && !after[0].edges.empty()) {
        TORCHQUANT_FUZZ_ASSERT(after[0].edges.back() >= top_before);  // the range never shrinks
      }
    }
    TORCHQUANT_FUZZ_ASSERT(total(after) == expected);
    // Once a histogram has grown past 2^16 bins the comparison stops (it would cost more than the
    // rest of the run; those go through one counting path for every version but the bin codes).
    differential = differential && bins_of(before) <= (1 << 16);
    if (differential) {
      TORCHQUANT_FUZZ_ASSERT(collect_with(scalar, x, CpuIsa::kScalar) == accepted);
      TORCHQUANT_FUZZ_ASSERT(same(scalar.histograms(), after));
    }
    for (const auto& h : after) {
      TORCHQUANT_FUZZ_ASSERT(h.counts.empty() || h.edges.size() >= h.counts.size() + 1);
    }
  }

  // The amax search on whatever was collected (small histograms only: entropy is quadratic).
  const auto& hists = calib.histograms();
  float top = 0.f;
  for (const auto& h : hists) {
    if (!h.edges.empty()) top = std::max(top, h.edges.back());
  }
  if (bins_of(hists) > 2048) return 0;
  const char* methods[] = {"entropy", "mse", "percentile"};
  torchquant::calib::ComputeAmaxOptions options(methods[in.range(0, 2)]);
  options.stride(in.range(1, 4)).start_bin(in.range(0, 200)).percentile(in.range(0, 100));
  const c10::optional<at::Tensor> amax = calib.compute_amax(options);
  TORCHQUANT_FUZZ_ASSERT(amax.has_value() == !hists.empty());
  if (!amax) return 0;
  TORCHQUANT_FUZZ_ASSERT(amax->ge(0).all().item<bool>());  // NaN fails too
  // Above FLT_MAX / 2 the top bin centres overflow to inf and mse's scores are NaN: its amax is
  // then inf, as upstream's (tests/test_amax_search.cpp, MseWithCentresPastFloatMax).
  if (top <= std::numeric_limits<float>::max() / 2) {
    TORCHQUANT_FUZZ_ASSERT(amax->isfinite().all().item<bool>() && amax->le(top).all().item<bool>());
  }
  return 0;
}
