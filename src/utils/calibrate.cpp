#include "torchquant/utils/calibrate.h"

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "torchquant/utils/quantizers.h"
#include "util/py_format.h"

namespace torchquant {
namespace utils {
namespace {

// Saves every quantizer's stages and the model's training flag; restores them when destroyed.
class ModeGuard {
 public:
  explicit ModeGuard(torch::nn::Module& model) : model_(model), training_(model.is_training()) {
    for (auto& nq : named_quantizers(model)) {
      saved_.push_back({nq.quantizer, nq.quantizer->is_enabled(), nq.quantizer->quant_enabled(),
                        nq.quantizer->calib_enabled()});
    }
  }
  ~ModeGuard() {
    for (auto& s : saved_) {
      s.q->disable_calib();
      if (s.calib) s.q->enable_calib();
      s.enabled ? s.q->enable() : s.q->disable();
      s.quant ? s.q->enable_quant() : s.q->disable_quant();
    }
    model_.train(training_);
  }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  struct Saved {
    std::shared_ptr<nn::TensorQuantizerImpl> q;
    bool enabled, quant, calib;
  };
  torch::nn::Module& model_;
  bool training_;
  std::vector<Saved> saved_;
};

class ProgressLine {
 public:
  ProgressLine(const CalibrateOptions& o)
      : total_(o.num_batches()),
        stream_(o.progress_stream() ? *o.progress_stream() : std::cerr),
        mode_(o.progress()),
        start_(std::chrono::steady_clock::now()) {
    if (mode_ == Progress::kAuto) {
      mode_ =
          (&stream_ == &std::cerr && isatty(fileno(stderr))) ? Progress::kLive : Progress::kLines;
    }
  }

  void update(int64_t done) {
    if (mode_ == Progress::kSilent) return;
    const double seconds = elapsed();
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    std::ostringstream line;
    line << "calibrating: batch " << done;
    if (total_ > 0) line << "/" << total_;
    line << "  " << detail::py_fixed(rate, 1) << " batch/s";
    if (total_ > 0 && rate > 0) {
      line << "  ETA " << detail::py_fixed(static_cast<double>(total_ - done) / rate, 0) << " s";
    }
    if (mode_ == Progress::kLive) {
      stream_ << "\r" << line.str() << "   " << std::flush;
    } else {
      const int64_t every = total_ > 0 ? std::max<int64_t>(1, total_ / 10) : 10;
      if (done % every == 0 || done == total_) stream_ << line.str() << "\n";
    }
  }

  void finish() {
    if (mode_ == Progress::kLive) stream_ << "\n";
  }

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  int64_t total_;
  std::ostream& stream_;
  Progress mode_;
  std::chrono::steady_clock::time_point start_;
};

void append_list(std::ostringstream& out, const char* title, const std::vector<std::string>& v) {
  if (v.empty()) return;
  out << title << " (" << v.size() << "):";
  for (const auto& n : v) out << " " << n;
  out << "\n";
}

}  // namespace

std::string CalibrationSummary::str() const {
  std::ostringstream out;
  out << "calibrated " << calibrated.size() << " quantizers on " << batches << " batches in "
      << detail::py_fixed(seconds, 2) << " s\n";
  append_list(out, "without data", without_data);
  append_list(out, "bypassed (no calibrator)", bypassed);
  return out.str();
}

CalibrationSummary calibrate(torch::nn::Module& model, const std::function<bool()>& next_batch,
                             const CalibrateOptions& options) {
  TORCH_CHECK_VALUE(next_batch != nullptr, "calibrate: got an empty batch function");
  TORCH_CHECK_VALUE(options.num_batches() != 0 && options.num_batches() >= -1,
                    "calibrate: num_batches must be -1 (all) or positive, got ",
                    options.num_batches());
  CalibrationSummary summary;
  const auto quantizers = named_quantizers(model);
  ProgressLine progress(options);
  {
    ModeGuard guard(model);
    model.eval();
    for (const auto& nq : quantizers) {
      auto& q = *nq.quantizer;
      if (!q.calibrator()) {
        q.disable();
        summary.bypassed.push_back(nq.name);
        continue;
      }
      if (options.reset_calibrators()) q.calibrator()->reset();
      q.enable();
      q.disable_quant();
      q.enable_calib();
    }
    at::NoGradGuard no_grad;
    while (options.num_batches() < 0 || summary.batches < options.num_batches()) {
      if (!next_batch()) break;
      ++summary.batches;
      progress.update(summary.batches);
    }
    progress.finish();
  }  // modes restored here, also when a forward throws
  for (const auto& nq : quantizers) {
    auto& q = *nq.quantizer;
    if (!q.calibrator()) continue;
    const bool is_max = q.calibrator()->name() == "MaxCalibrator";
    const calib::ComputeAmaxOptions method =
        is_max ? calib::ComputeAmaxOptions() : options.method();
    const c10::optional<at::Tensor> amax = q.calibrator()->compute_amax(method);
    if (!amax) {
      TORCH_CHECK(!options.strict(), "calibrate: the calibrator of ", nq.name,
                  " saw no data (is that layer used by the forward pass?); pass strict(false) to "
                  "leave it without amax");
      summary.without_data.push_back(nq.name);
      continue;
    }
    q.set_amax(*amax);
    summary.calibrated.push_back(nq.name);
  }
  summary.seconds = progress.elapsed();
  return summary;
}

}  // namespace utils
}  // namespace torchquant
