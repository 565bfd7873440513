#include "torchquant/calib/max_calibrator.h"

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/scalar_tensor.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "calib/abs_max.h"
#include "calib/histogram_kernel.h"

namespace torchquant {
namespace calib {

namespace {

// Whether every element of a (small) amax tensor is finite: a plain loop for the CPU float32
// amax of the fast paths (three ATen ops and a sync cost more than the weight's max itself).
bool all_finite(const at::Tensor& amax) {
  if (amax.is_cpu() && amax.scalar_type() == at::kFloat && amax.is_contiguous()) {
    const float* p = amax.const_data_ptr<float>();
    return std::all_of(p, p + amax.numel(), [](float v) { return std::isfinite(v); });
  }
  return amax.isfinite().all().item<bool>();
}

}  // namespace

MaxCalibrator::MaxCalibrator(NumBits num_bits, c10::optional<std::vector<int64_t>> axis,
                             bool is_unsigned, bool track_amax)
    : Calibrator(num_bits, std::move(axis), is_unsigned), track_amax_(track_amax) {}

at::Tensor MaxCalibrator::local_amax(const at::Tensor& x, const std::vector<int64_t>& dims) const {
  if (!axis()) {
    if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous()) {
      const detail::AbsMax m = detail::abs_max(x.data_ptr<float>(), x.numel());
      return at::scalar_tensor(m.finite ? m.max : NAN, at::kFloat);
    }
    // In the input's dtype, then float32: a dtype argument rejects float64 inputs (narrowing),
    // and rounding after the max gives the same value.
    return at::linalg_vector_norm(x, std::numeric_limits<double>::infinity()).to(at::kFloat);
  }
  if (dims.empty()) return x.abs().to(at::kFloat);  // every dim kept: amax is |x| itself
  if (x.scalar_type() == at::kFloat && detail::reduces_all_but_first(x, dims)) {
    return detail::abs_max_per_row(x);  // per output channel: the common case
  }
  // max |x| over the reduced dims without materialising |x|: the infinity norm.
  return at::linalg_vector_norm(x, std::numeric_limits<double>::infinity(), dims,
                                /*keepdim=*/true)
      .to(at::kFloat);
}

void MaxCalibrator::collect(const at::Tensor& x) {
  constexpr const char* kWhere = "MaxCalibrator::collect";
  check_input(x, kWhere);
  at::NoGradGuard no_grad;
  const std::vector<int64_t> dims = reduce_dims(x, kWhere);
  if (x.numel() == 0) return;  // nothing to learn from an empty batch
  const at::Tensor local = local_amax(x.detach(), dims);
  TORCH_CHECK_VALUE(all_finite(local), kWhere,
                    ": the batch contains NaN or Inf (max |x| = ", local.max().item<float>(),
                    "); nothing was collected from it");
  accumulate(local, kWhere);
}

void MaxCalibrator::accumulate(const at::Tensor& local_amax, const char* where) {
  if (!calib_amax_.defined()) {
    calib_amax_ = local_amax.clone();
  } else {
    TORCH_CHECK_VALUE(calib_amax_.sizes() == local_amax.sizes(), where,
                      ": amax shape changed! The running amax has shape ", calib_amax_.sizes(),
                      " but this batch gives ", local_amax.sizes(),
                      " (the kept axes must have the same sizes in every batch)");
    calib_amax_ = at::maximum(calib_amax_, local_amax.to(calib_amax_.device()));
  }
  if (track_amax_) amaxs_.push_back(local_amax.cpu().clone());
}

void MaxCalibrator::reset() {
  calib_amax_ = at::Tensor();
  amaxs_.clear();
}

c10::optional<at::Tensor> MaxCalibrator::compute_amax(const ComputeAmaxOptions& options) const {
  TORCH_CHECK_VALUE(options.method().empty() || options.method() == "max",
                    "MaxCalibrator::compute_amax: MaxCalibrator has no method \"", options.method(),
                    "\" (entropy, mse and percentile need calib_method \"histogram\")");
  if (!calib_amax_.defined()) return c10::nullopt;
  return calib_amax_.clone();
}

void MaxCalibrator::merge(const Calibrator& other) {
  const auto* peer = dynamic_cast<const MaxCalibrator*>(&other);
  TORCH_CHECK_TYPE(peer != nullptr, "MaxCalibrator::merge: cannot merge a ", other.name(),
                   " into a MaxCalibrator");
  if (!peer->calib_amax_.defined()) return;
  at::NoGradGuard no_grad;
  const bool keep_history = track_amax_;
  track_amax_ = false;
  accumulate(peer->calib_amax_, "MaxCalibrator::merge");
  track_amax_ = keep_history;
  for (const auto& a : peer->amaxs_) amaxs_.push_back(a.clone());
}

std::unique_ptr<Calibrator> MaxCalibrator::clone() const {
  auto copy = std::make_unique<MaxCalibrator>(*this);
  if (calib_amax_.defined()) copy->calib_amax_ = calib_amax_.clone();
  for (auto& a : copy->amaxs_) a = a.clone();
  return copy;
}

std::string MaxCalibrator::str() const {
  return name() + "(" + common_fields() + ", track_amax=" + (track_amax_ ? "True" : "False") + ")";
}

}  // namespace calib
}  // namespace torchquant
