#pragma once
/// \file
/// The calibrator interface owned by TensorQuantizer (mirrors `pytorch_quantization.calib`).
///
/// Example:
/// \code
///   torchquant::calib::MaxCalibrator calib(8, /*axis=*/c10::nullopt, /*is_unsigned=*/false);
///   for (auto& batch : batches) calib.collect(batch);
///   at::Tensor amax = *calib.compute_amax();
/// \endcode

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/arg.h>

#include <memory>
#include <string>
#include <vector>

#include "torchquant/quant_descriptor.h"

namespace torchquant {
namespace calib {

/// How `compute_amax` turns collected statistics into amax. `method` is "entropy", "mse" or
/// "percentile" for HistogramCalibrator and empty (or "max") for MaxCalibrator.
///
/// \code
///   calib.compute_amax(ComputeAmaxOptions("percentile").percentile(99.9));
/// \endcode
struct ComputeAmaxOptions {
  /* implicit */ ComputeAmaxOptions(std::string method = "") : method_(std::move(method)) {}
  /* implicit */ ComputeAmaxOptions(const char* method) : method_(method) {}
  TORCH_ARG(std::string, method);
  /// Step between candidate bins (entropy, mse).
  TORCH_ARG(int64_t, stride) = 1;
  /// First candidate bin (entropy, mse).
  TORCH_ARG(int64_t, start_bin) = 128;
  /// Percentile in [0, 100] (percentile).
  TORCH_ARG(double, percentile) = 99.99;
};

/// Collects statistics of tensors and computes amax from them. Collection and the amax search
/// are separate: collect() any number of batches, then compute_amax() (any number of times).
class Calibrator {
 public:
  /// `axis`: the axes that keep their own amax (negative axes count from the end of the first
  /// collected tensor's dims); none means per tensor.
  Calibrator(NumBits num_bits, c10::optional<std::vector<int64_t>> axis, bool is_unsigned);
  virtual ~Calibrator() = default;

  /// Adds the statistics of `x` (any floating dtype and device). NaN or Inf in `x` is an error
  /// that leaves the collected state unchanged.
  virtual void collect(const at::Tensor& x) = 0;
  /// Forgets everything collected.
  virtual void reset() = 0;
  /// The amax of what was collected, or nullopt when nothing was.
  virtual c10::optional<at::Tensor> compute_amax(const ComputeAmaxOptions& options = {}) const = 0;
  /// Combines `other` (the same kind of calibrator, e.g. from another process) into this one, as
  /// if this calibrator had also seen other's data.
  virtual void merge(const Calibrator& other) = 0;
  /// A deep copy, collected state included.
  virtual std::unique_ptr<Calibrator> clone() const = 0;
  /// The class name, as printed in TensorQuantizer's repr ("MaxCalibrator").
  virtual std::string name() const = 0;
  /// Upstream's repr, e.g. `MaxCalibrator(num_bits=8, axis=None, unsigned=False,
  /// track_amax=False)`.
  virtual std::string str() const;

  const NumBits& num_bits() const { return num_bits_; }
  void set_num_bits(NumBits value) { num_bits_ = value; }
  bool is_unsigned() const { return unsigned_; }
  void set_unsigned(bool value) { unsigned_ = value; }
  const c10::optional<std::vector<int64_t>>& axis() const { return axis_; }

 protected:
  /// The axes normalised against `x.dim()` and sorted; errors name `where`.
  std::vector<int64_t> normalized_axis(const at::Tensor& x, const char* where) const;
  /// The dims to reduce for `x`: all dims not in the normalised axis.
  std::vector<int64_t> reduce_dims(const at::Tensor& x, const char* where) const;
  /// Checks that `x` is a defined floating-point tensor; errors name `where`.
  static void check_input(const at::Tensor& x, const char* where);
  /// Fields of str() shared by every calibrator: "num_bits=8, axis=None, unsigned=False".
  std::string common_fields() const;

 private:
  NumBits num_bits_;
  c10::optional<std::vector<int64_t>> axis_;
  bool unsigned_;
};

/// Owning pointer to a calibrator that deep-copies on copy, so that modules holding one clone
/// with their collected state.
class CalibratorHandle {
 public:
  CalibratorHandle() = default;
  explicit CalibratorHandle(std::unique_ptr<Calibrator> p) : p_(std::move(p)) {}
  CalibratorHandle(const CalibratorHandle& other) : p_(other.p_ ? other.p_->clone() : nullptr) {}
  CalibratorHandle(CalibratorHandle&&) noexcept = default;
  CalibratorHandle& operator=(const CalibratorHandle& other) {
    if (this != &other) p_ = other.p_ ? other.p_->clone() : nullptr;
    return *this;
  }
  CalibratorHandle& operator=(CalibratorHandle&&) noexcept = default;
  Calibrator* get() const { return p_.get(); }
  Calibrator* operator->() const { return p_.get(); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  std::unique_ptr<Calibrator> p_;
};

/// The calibrator a descriptor asks for (calib_method "max" or "histogram").
std::unique_ptr<Calibrator> make_calibrator(const QuantDescriptor& desc);

}  // namespace calib
}  // namespace torchquant
