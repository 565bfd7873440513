#include "torchquant/calib/histogram_calibrator.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "calib/amax_search.h"
#include "calib/histogram_kernel.h"
#include "calib/histogram_merge.h"
#include "calib/upstream_linspace.h"
#include "ops/quant_ops.h"

namespace torchquant {
namespace calib {
namespace {

std::vector<int64_t> to_counts(const at::Tensor& hist) {
  at::Tensor c = hist.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<float> to_edges(const at::Tensor& edges) {
  at::Tensor e = edges.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
}

/// Most bins a histogram may grow to (128 MiB of int64 counts).
constexpr int64_t kMaxGrownBins = int64_t{1} << 24;

// Upstream's grown edges come from a float32 arange whose end, x_max + width, is rounded to
// float32 (and whose values are rounded twice): when the bins are not much wider than x_max's
// float32 spacing, the last edge can fall short of x_max, and upstream's histc(max=edges[-1])
// then silently drops the largest values. We keep upstream's edges and only make them reach:
// missing edges are appended and the last one is raised to x_max, so every value is counted.
void cover_max(HistogramState* h, float x_max) {
  const auto needed = static_cast<size_t>(h->num_bins) + 1;
  while (h->edges.size() < needed) h->edges.push_back(std::max(h->edges.back(), x_max));
  h->edges.back() = std::max(h->edges.back(), x_max);
}

// Fixes `h`'s range for a batch whose max |x| is `x_max` with pytorch_quantization's torch-path
// rules (first batch: linspace(0, x_max, bins + 1); a larger max: keep the width, edges =
// float32 arange(0, x_max + width, width)). Returns false when the batch is all zeros and no range
// is known yet: `zeros` are then kept for the first bin.
bool prepare_range(HistogramState* h, float x_max, int64_t initial_bins, int64_t zeros) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (h->edges.empty()) {
    if (x_max == 0.f) {
      h->pending_zeros += zeros;
      return false;
    }
    h->edges = detail::upstream_linspace(x_max, initial_bins);
    h->num_bins = initial_bins;
    h->counts.assign(static_cast<size_t>(initial_bins), 0);
    h->counts[0] += h->pending_zeros;
    h->pending_zeros = 0;
  } else if (x_max > h->edges.back()) {
    const at::Tensor width = at::scalar_tensor(h->edges[1] - h->edges[0], f32);
    const at::Tensor top = at::scalar_tensor(x_max, f32);
    const float bins = std::ceil((top / width).item<float>());
    // Checked before the cast (UB past int64) and before allocating; h is the caller's copy.
    TORCH_CHECK_VALUE(bins <= static_cast<float>(kMaxGrownBins),
                      "HistogramCalibrator::collect: max |x| = ", x_max,
                      " would grow the histogram to ", bins, " bins of width ", width.item<float>(),
                      " (at most ", kMaxGrownBins, "); nothing was collected from this batch");
    h->num_bins = static_cast<int64_t>(bins);
    // Within one bin of FLT_MAX, max + width overflows to inf and arange refuses it (upstream
    // fails there with "unsupported range: 0 -> inf"); the grid then stops at FLT_MAX and
    // cover_max adds the max as its last edge.
    float end = (top + width).item<float>();
    if (std::isinf(end)) end = std::numeric_limits<float>::max();
    h->edges = to_edges(at::arange(0, end, width.item<float>(), f32));
    cover_max(h, x_max);
  }
  h->counts.resize(std::max(h->counts.size(), static_cast<size_t>(h->num_bins)), 0);
  return true;
}

// Adds counts of one batch (`num_bins` of them, over [0, edges.back()]) to `h`.
void add_counts(HistogramState* h, const std::vector<int64_t>& batch) {
  for (size_t i = 0; i < batch.size(); ++i) h->counts[i] += batch[i];
}

// Counts `n` float32 values into `batch` (resized to h's bins, zeroed) over h's known range in one
// pass, which also finds their max |x|: the counts are h's only if that max is finite and in range.
detail::AbsMax count_in_range(const HistogramState& h, const float* data, int64_t n,
                              bool skip_zeros, std::vector<int64_t>* batch) {
  batch->assign(static_cast<size_t>(h.num_bins), 0);
  return detail::accumulate_histogram(data, n, h.edges.back(), h.num_bins, skip_zeros,
                                      batch->data());
}

// One channel of float32 values on the CPU, fused kernels and int64 counts. With a known range,
// one pass counts and finds max |x|; only a batch that grows the range is counted again.
void add_span(HistogramState* h, const float* data, int64_t n, int64_t initial_bins,
              bool skip_zeros, const char* where) {
  detail::AbsMax m;
  std::vector<int64_t> batch;
  if (!h->edges.empty()) {
    m = count_in_range(*h, data, n, skip_zeros, &batch);
  } else {
    m = detail::abs_max(data, n);
  }
  TORCH_CHECK_VALUE(m.finite, where, ": the batch contains NaN or Inf; nothing was collected ",
                    "from it");
  if (batch.empty() || m.max > h->edges.back()) {
    if (!prepare_range(h, m.max, initial_bins, skip_zeros ? 0 : n)) return;
    count_in_range(*h, data, n, skip_zeros, &batch);
  }
  add_counts(h, batch);
}

// One channel on another device (CUDA): max |x| with ATen, the counts with the
// torchquant::_abs_histogram kernel (shared-memory histograms, int64 totals), the same rules.
void add_tensor(HistogramState* h, const at::Tensor& values, int64_t initial_bins,
                bool skip_zeros) {
  const at::Tensor magnitudes = values.abs();
  const int64_t counted = skip_zeros ? (magnitudes != 0).sum().item<int64_t>() : values.numel();
  if (counted == 0) return;
  if (!prepare_range(h, magnitudes.max().item<float>(), initial_bins, counted)) return;
  add_counts(h, to_counts(ops::abs_histogram(values, h->edges.back(), h->num_bins, skip_zeros)));
}

}  // namespace

HistogramCalibrator::HistogramCalibrator(NumBits num_bits, c10::optional<std::vector<int64_t>> axis,
                                         bool is_unsigned, int64_t num_bins, bool skip_zeros)
    : Calibrator(num_bits, std::move(axis), is_unsigned),
      initial_num_bins_(num_bins),
      skip_zeros_(skip_zeros) {
  TORCH_CHECK_VALUE(num_bins > 0, "HistogramCalibrator: num_bins must be positive, got ", num_bins);
}

const HistogramState& HistogramCalibrator::histogram() const {
  static const HistogramState kEmpty;
  return hists_.empty() ? kEmpty : hists_.front();
}

bool HistogramCalibrator::collect_in_range(const at::Tensor& x) {
  if (axis() || hists_.size() != 1 || hists_.front().edges.empty() || !x.is_cpu() ||
      x.layout() != at::kStrided || x.scalar_type() != at::kFloat || !x.is_contiguous() ||
      x.numel() == 0) {
    return false;
  }
  HistogramState& h = hists_.front();
  if (static_cast<int64_t>(h.counts.size()) < h.num_bins) return false;  // prepare_range's job
  const detail::AbsMax m =
      count_in_range(h, x.const_data_ptr<float>(), x.numel(), skip_zeros_, &batch_counts_);
  if (!m.finite || m.max > h.edges.back()) return false;
  add_counts(&h, batch_counts_);
  device_ = x.device();
  return true;
}

void HistogramCalibrator::collect(const at::Tensor& x) {
  constexpr const char* kWhere = "HistogramCalibrator::collect";
  check_input(x, kWhere);
  // A calibration batch makes one collect per quantizer, most of them of this kind: no copy of
  // the state, no tensor ops (each cost more than counting a small activation).
  if (collect_in_range(x)) return;
  at::NoGradGuard no_grad;
  const std::vector<int64_t> keep = normalized_axis(x, kWhere);
  if (x.numel() == 0) return;
  // Rows = channels of the kept axes (one row per tensor without an axis).
  std::vector<int64_t> order = keep;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  int64_t channels = 1;
  for (int64_t d : keep) {
    channels *= x.size(d);
    shape[static_cast<size_t>(d)] = x.size(d);
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!std::binary_search(keep.begin(), keep.end(), d)) order.push_back(d);
  }
  if (!axis()) shape.clear();
  at::Tensor rows = x.detach().permute(order).reshape({channels, -1});
  if (rows.is_cpu()) rows = rows.to(at::kFloat).contiguous();
  const int64_t inner = rows.size(1);
  if (!hists_.empty()) {
    TORCH_CHECK_VALUE(static_cast<int64_t>(hists_.size()) == channels && shape == amax_shape_,
                      kWhere, ": amax shape changed! The histograms have shape ",
                      c10::IntArrayRef(amax_shape_), " but this batch gives ",
                      c10::IntArrayRef(shape));
  }
  if (!rows.is_cpu()) {
    rows = rows.abs().to(at::kFloat);
    TORCH_CHECK_VALUE(rows.isfinite().all().item<bool>(), kWhere,
                      ": the batch contains NaN or Inf; nothing was collected from it");
  }
  // Into a copy: an error in any channel leaves the collected state as it was.
  std::vector<HistogramState> next = hists_;
  next.resize(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    HistogramState* h = &next[static_cast<size_t>(c)];
    if (rows.is_cpu()) {
      add_span(h, rows.data_ptr<float>() + c * inner, inner, initial_num_bins_, skip_zeros_,
               kWhere);
    } else {
      add_tensor(h, rows[c], initial_num_bins_, skip_zeros_);
    }
  }
  hists_ = std::move(next);
  amax_shape_ = shape;
  device_ = x.device();
}

void HistogramCalibrator::reset() {
  hists_.clear();
  amax_shape_.clear();
  device_.reset();
}

float HistogramCalibrator::search(const HistogramState& h,
                                  const ComputeAmaxOptions& options) const {
  if (h.edges.empty()) return 0.f;  // nothing but zeros (or nothing) in this channel
  const std::string& method = options.method();
  if (method == "entropy") {
    return detail::entropy_amax(h.counts, h.edges, num_bits().bits(), is_unsigned(),
                                options.stride(), options.start_bin());
  }
  if (method == "mse") {
    return detail::mse_amax(h.counts, h.edges, num_bits().bits(), is_unsigned(), options.stride(),
                            options.start_bin());
  }
  return detail::percentile_amax(h.counts, h.edges, options.percentile());
}

c10::optional<at::Tensor> HistogramCalibrator::compute_amax(
    const ComputeAmaxOptions& options) const {
  const std::string& method = options.method();
  TORCH_CHECK_VALUE(method == "entropy" || method == "mse" || method == "percentile",
                    "HistogramCalibrator::compute_amax: unknown method \"", method,
                    "\" (expected \"entropy\", \"mse\" or \"percentile\")");
  TORCH_CHECK_VALUE(options.stride() > 0, "HistogramCalibrator::compute_amax: stride must be ",
                    "positive, got ", options.stride());
  TORCH_CHECK_VALUE(options.start_bin() >= 0,
                    "HistogramCalibrator::compute_amax: start_bin must be >= 0, got ",
                    options.start_bin());
  TORCH_CHECK_VALUE(options.percentile() >= 0 && options.percentile() <= 100,
                    "HistogramCalibrator::compute_amax: percentile must be in [0, 100], got ",
                    options.percentile());
  TORCH_CHECK_VALUE(method == "percentile" || !num_bits().is_e4m3(),
                    "HistogramCalibrator::compute_amax: method \"", method,
                    "\" needs an integer num_bits, got ", num_bits().str(),
                    " (E4M3); use \"percentile\"");
  if (hists_.empty()) return c10::nullopt;
  std::vector<float> amax;
  try {
    for (const HistogramState& h : hists_) amax.push_back(search(h, options));
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK_VALUE(false, "HistogramCalibrator::compute_amax: ", e.what());
  }
  at::Tensor result = at::tensor(amax).reshape(amax_shape_);
  return device_ ? result.to(*device_) : result;
}

void HistogramCalibrator::merge(const Calibrator& other) {
  const auto* peer = dynamic_cast<const HistogramCalibrator*>(&other);
  TORCH_CHECK_TYPE(peer != nullptr, "HistogramCalibrator::merge: cannot merge a ", other.name(),
                   " into a HistogramCalibrator");
  if (peer->hists_.empty()) return;
  if (hists_.empty()) {
    hists_ = peer->hists_;
    amax_shape_ = peer->amax_shape_;
    device_ = peer->device_;
    return;
  }
  TORCH_CHECK_VALUE(amax_shape_ == peer->amax_shape_ && hists_.size() == peer->hists_.size(),
                    "HistogramCalibrator::merge: the histograms have shapes ", amax_shape_, " and ",
                    peer->amax_shape_);
  std::vector<HistogramState> merged = hists_;
  for (size_t c = 0; c < merged.size(); ++c) {
    detail::merge_histogram(&merged[c], peer->hists_[c]);
  }
  hists_ = std::move(merged);
}

std::unique_ptr<Calibrator> HistogramCalibrator::clone() const {
  return std::make_unique<HistogramCalibrator>(*this);
}

std::string HistogramCalibrator::str() const {
  return name() + "(" + common_fields() + ", num_bins=" + std::to_string(initial_num_bins_) +
         ", skip_zeros=" + (skip_zeros_ ? "True" : "False") + ")";
}

}  // namespace calib
}  // namespace torchquant
