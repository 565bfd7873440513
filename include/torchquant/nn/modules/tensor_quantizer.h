#pragma once
/// \file
/// TensorQuantizer: the module that quantizes one tensor (mirrors
/// `pytorch_quantization.nn.TensorQuantizer`).

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <iosfwd>
#include <memory>
#include <string>

#include "torchquant/calib/calibrator.h"
#include "torchquant/nn/modules/clip.h"
#include "torchquant/quant_descriptor.h"

namespace torchquant {
namespace nn {

/// Options of TensorQuantizer: the descriptor and the initial stage flags.
struct TensorQuantizerOptions {
  /* implicit */ TensorQuantizerOptions(QuantDescriptor quant_desc = QuantDescriptor())
      : quant_desc_(std::move(quant_desc)) {}
  TORCH_ARG(QuantDescriptor, quant_desc);
  /// Bypass the module (return the input, after pre_quant_scale).
  TORCH_ARG(bool, disabled) = false;
  /// Run the quant stage.
  TORCH_ARG(bool, if_quant) = true;
  /// Run the clip stage (requires learn_amax).
  TORCH_ARG(bool, if_clip) = false;
  /// Run the calibration stage.
  TORCH_ARG(bool, if_calib) = false;
};

/// Quantizes a tensor: forward runs, in order, (1) multiply by pre_quant_scale if set (even when
/// disabled), (2) return the input if disabled, (3) calibrator.collect(input) when calibrating,
/// (4) the clip stage (learn_amax), (5) the quant stage: fake quant (or real quant with
/// fake_quant false) with amax from the `_amax` buffer, else the dynamic max of |x| over the dims
/// not in `axis`, times scale_amax.
///
/// State: `_amax` (fixed or calibrated amax), `_pre_quant_scale`, and with learn_amax a child
/// `clip` holding `clip_value_min` / `clip_value_max`: upstream's names, so state moves between
/// Python and C++. `torch::load` of a state holding `_amax` into a quantizer without one creates
/// the buffer (on the quantizer's device).
///
/// \code
///   torchquant::nn::TensorQuantizer q(torchquant::QuantDescriptor().calib_method("histogram"));
///   q->disable_quant();
///   q->enable_calib();
///   for (auto& batch : batches) q(batch);  // collects, returns the input
///   q->load_calib_amax("entropy");
///   q->disable_calib();
///   q->enable_quant();
///   at::Tensor y = q(x);  // fake-quantized with the calibrated amax
/// \endcode
class TensorQuantizerImpl : public torch::nn::Cloneable<TensorQuantizerImpl> {
 public:
  explicit TensorQuantizerImpl(TensorQuantizerOptions options = {});

  void reset() override;
  at::Tensor forward(const at::Tensor& inputs);
  /// Upstream's extra_repr inside `TensorQuantizer(...)`, e.g.
  /// `TensorQuantizer(8bit fake per-tensor amax=dynamic calibrator=MaxCalibrator scale=1.0 quant)`.
  void pretty_print(std::ostream& stream) const override;
  /// The text inside the parentheses of pretty_print (upstream's `extra_repr()`).
  std::string extra_repr() const;
  void load(torch::serialize::InputArchive& archive) override;

  // -- stage flags --------------------------------------------------------------------------------
  void disable() { disabled_ = true; }
  void enable() { disabled_ = false; }
  void disable_quant() { if_quant_ = false; }
  void enable_quant() { if_quant_ = true; }
  /// Start collecting statistics (an error without a calibrator).
  void enable_calib();
  void disable_calib() { if_calib_ = false; }
  /// Start the clip stage (an error unless learn_amax); makes the clip bounds learnable.
  void enable_clip();
  void disable_clip();
  bool is_enabled() const { return !disabled_; }
  bool quant_enabled() const { return if_quant_; }
  bool calib_enabled() const { return if_calib_; }
  bool clip_enabled() const { return if_clip_; }

  // -- amax ---------------------------------------------------------------------------------------
  /// The `_amax` buffer, undefined when amax is dynamic.
  at::Tensor amax() const { return amax_; }
  bool has_amax() const { return amax_.defined(); }
  /// Sets `_amax`, creating it if needed; its shape may not change once set.
  void set_amax(const at::Tensor& value);
  void set_amax(double value);
  /// Loads amax from the calibrator (`options` go to compute_amax). When the calibrator has seen
  /// nothing: an error with strict, else amax = NaN.
  void load_calib_amax(const calib::ComputeAmaxOptions& options = {}, bool strict = true);
  /// Copies `_amax` into the learnable clip bounds (max over channels if per channel).
  void init_learn_amax();
  /// amax / max_bound (undefined under dynamic amax).
  at::Tensor step_size() const;
  /// 2^(num_bits-1+unsigned) - 1, or 448 for E4M3.
  double maxbound() const;
  /// The scale of the last real-quant forward (upstream's `scale`; 1 for fake quant).
  at::Tensor scale() const { return scale_; }

  // -- pre_quant_scale ----------------------------------------------------------------------------
  /// `_pre_quant_scale`, undefined when unset.
  at::Tensor pre_quant_scale() const { return pre_quant_scale_; }
  void set_pre_quant_scale(const at::Tensor& value);

  // -- descriptor fields --------------------------------------------------------------------------
  const NumBits& num_bits() const { return num_bits_; }
  /// Also updates the calibrator (upstream forgets).
  void set_num_bits(NumBits value);
  bool is_unsigned() const { return unsigned_; }
  /// Also updates the calibrator (upstream forgets).
  void set_unsigned(bool value);
  bool narrow_range() const { return narrow_range_; }
  void set_narrow_range(bool value) { narrow_range_ = value; }
  /// New axes (nullopt or empty: per tensor); also rebuilds the calibrator for them. An error
  /// once the quantizer has an amax (its shape would no longer match).
  void set_axis(c10::optional<std::vector<int64_t>> axis);
  const c10::optional<std::vector<int64_t>>& axis() const { return axis_; }
  bool fake_quant() const { return fake_quant_; }
  bool learn_amax() const { return learn_amax_; }
  const c10::optional<double>& scale_amax() const { return scale_amax_; }

  calib::Calibrator* calibrator() const { return calibrator_.get(); }
  /// Replaces the calibrator (e.g. with one configured differently).
  void set_calibrator(std::unique_ptr<calib::Calibrator> calibrator) {
    calibrator_ = calib::CalibratorHandle(std::move(calibrator));
  }

  /// Export mode (upstream's `use_fb_fake_quant`): when on, every quantizer fake-quantizes with
  /// ATen's `fake_quantize_per_tensor_affine` / `_per_channel_affine` (full range, scale =
  /// amax / maxbound), so traced graphs carry standard ops. Process-wide.
  static void set_use_fb_fake_quant(bool value);
  static bool use_fb_fake_quant();

  /// The arguments of `fake_tensor_quant(inputs, amax, num_bits, unsigned, narrow_range)`.
  struct FakeQuantArgs {
    at::Tensor amax;
    int64_t num_bits = 8;
    bool is_unsigned = false;
    bool narrow_range = true;
  };
  /// When forward(inputs) would be exactly `fake_tensor_quant(inputs, amax, ...)` (enabled, quant
  /// stage on, calibration and clip stages off, fake integer quantization, no learn_amax, no
  /// pre_quant_scale, export mode off), its arguments with amax resolved for `inputs` (fixed, or
  /// dynamic); otherwise nullopt. Fused layers (QuantConvNd's training path) use it to
  /// recompute the quantization in backward instead of saving it.
  ///
  /// \code
  ///   if (auto args = quantizer->plain_fake_quant_args(x)) std::cout << args->amax;
  /// \endcode
  c10::optional<FakeQuantArgs> plain_fake_quant_args(const at::Tensor& inputs) const;

  TensorQuantizerOptions options;
  /// The learnable clip (only with learn_amax).
  Clip clip{nullptr};

 private:
  at::Tensor get_amax(const at::Tensor& inputs) const;
  at::Tensor quant_forward(const at::Tensor& inputs);
  at::Tensor fb_fake_quant(const at::Tensor& inputs, const at::Tensor& amax) const;
  std::string short_amax() const;
  c10::Device module_device() const;

  NumBits num_bits_;
  bool fake_quant_ = true;
  c10::optional<std::vector<int64_t>> axis_;
  c10::optional<double> scale_amax_;
  bool learn_amax_ = false;
  bool unsigned_ = false;
  bool narrow_range_ = false;
  bool disabled_ = false;
  bool if_quant_ = true;
  bool if_clip_ = false;
  bool if_calib_ = false;
  at::Tensor amax_;
  at::Tensor pre_quant_scale_;
  at::Tensor scale_;
  calib::CalibratorHandle calibrator_;
};
TORCH_MODULE(TensorQuantizer);

}  // namespace nn
}  // namespace torchquant
