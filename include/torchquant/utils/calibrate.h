#pragma once
/// \file
/// The calibration loop: collect statistics over some batches, then load amax into every
/// quantizer (pytorch_quantization's collect_stats + compute_amax recipe, as one call).
///
/// Example:
/// \code
///   auto summary = torchquant::utils::calibrate(
///       *model, *loader, [&](const auto& batch) { model->forward(batch.data); },
///       torchquant::utils::CalibrateOptions().num_batches(16).method(
///           torchquant::calib::ComputeAmaxOptions("percentile").percentile(99.99)));
///   std::cout << summary.str();
/// \endcode

#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "torchquant/calib/calibrator.h"

namespace torchquant {
namespace utils {

/// How progress is shown while calibrating.
enum class Progress {
  kAuto,   ///< a live line on a terminal, plain periodic lines otherwise
  kLive,   ///< a live line (carriage returns)
  kLines,  ///< a line every 10% of the batches (or every 10 batches when the count is unknown)
  kSilent,
};

/// Options of calibrate().
struct CalibrateOptions {
  using StreamPtr = std::ostream*;
  /// Batches to run (-1: until the data ends).
  TORCH_ARG(int64_t, num_batches) = -1;
  /// The method for histogram calibrators (MaxCalibrators always load their max).
  TORCH_ARG(calib::ComputeAmaxOptions, method) = calib::ComputeAmaxOptions("percentile");
  /// A quantizer whose calibrator saw no data: an error (true) or left without amax (false).
  TORCH_ARG(bool, strict) = true;
  /// Forget what calibrators collected before this call.
  TORCH_ARG(bool, reset_calibrators) = true;
  TORCH_ARG(Progress, progress) = Progress::kAuto;
  /// Where progress goes (default std::cerr).
  TORCH_ARG(StreamPtr, progress_stream) = nullptr;
};

/// What calibrate() did.
struct CalibrationSummary {
  int64_t batches = 0;
  double seconds = 0;
  /// Quantizers that received an amax.
  std::vector<std::string> calibrated;
  /// Quantizers whose calibrator saw no data (only with strict = false).
  std::vector<std::string> without_data;
  /// Quantizers without a calibrator, bypassed while calibrating.
  std::vector<std::string> bypassed;
  std::string str() const;
};

/// Calibrates every quantizer of `model` that has a calibrator: quantization off, collection on,
/// eval mode, no gradients; `next_batch()` runs one forward pass of the user's code and returns
/// false when the data ends. Every mode it changed (quantizer stages, training flag) is restored,
/// also when a forward throws. Then amax is loaded (max for MaxCalibrators, `options.method`
/// for histogram ones).
CalibrationSummary calibrate(torch::nn::Module& model, const std::function<bool()>& next_batch,
                             const CalibrateOptions& options = {});

/// calibrate() over a torch::data loader (or any range): `forward(batch)` runs the model.
template <typename Loader, typename Forward>
CalibrationSummary calibrate(torch::nn::Module& model, Loader& loader, Forward&& forward,
                             const CalibrateOptions& options = {}) {
  auto it = loader.begin();
  auto end = loader.end();
  return calibrate(
      model,
      [&]() {
        if (it == end) return false;
        forward(*it);
        ++it;
        return true;
      },
      options);
}

}  // namespace utils
}  // namespace torchquant
