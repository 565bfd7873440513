#include "torchquant/nn/modules/tensor_quantizer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/serialize/input-archive.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <ostream>

#include "calib/abs_max.h"
#include "torchquant/tensor_quant.h"
#include "util/py_format.h"

namespace torchquant {
namespace nn {
namespace {

std::atomic<bool> g_use_fb_fake_quant{false};

// Dims of `x` not kept by `axis` (negative axes normalised; upstream treats them as per tensor).
std::vector<int64_t> reduce_dims_for(const at::Tensor& x,
                                     const c10::optional<std::vector<int64_t>>& axis) {
  std::vector<bool> keep(static_cast<size_t>(x.dim()), false);
  for (int64_t a : *axis) {
    TORCH_CHECK_INDEX(a >= -x.dim() && a < x.dim(), "TensorQuantizer: axis ", a,
                      " is out of range for an input of shape ", x.sizes(), " (expected -", x.dim(),
                      " <= axis < ", x.dim(), ")");
    keep[static_cast<size_t>(a < 0 ? a + x.dim() : a)] = true;
  }
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!keep[static_cast<size_t>(d)]) dims.push_back(d);
  }
  return dims;
}

}  // namespace

TensorQuantizerImpl::TensorQuantizerImpl(TensorQuantizerOptions options_)
    : options(std::move(options_)) {
  const QuantDescriptor& desc = options.quant_desc();
  num_bits_ = desc.num_bits();
  fake_quant_ = desc.fake_quant();
  axis_ = desc.axis();
  scale_amax_ = desc.scale_amax();
  learn_amax_ = desc.learn_amax();
  unsigned_ = desc.is_unsigned();
  narrow_range_ = desc.narrow_range();
  disabled_ = options.disabled();
  if_quant_ = options.if_quant();
  if_calib_ = options.if_calib();
  if (!fake_quant_) {
    scale_ = at::Tensor();  // real quant: no scale until the first forward
  } else {
    scale_ = at::scalar_tensor(1.0, at::kFloat);
  }
  if (desc.has_amax()) amax_ = desc.amax();
  calibrator_ = calib::CalibratorHandle(calib::make_calibrator(desc));
  reset();
  if (learn_amax_ || options.if_clip()) enable_clip();
}

void TensorQuantizerImpl::reset() {
  // Registers the current state under upstream's names; fresh copies so that a clone never shares
  // storage with its original.
  if (amax_.defined()) amax_ = register_buffer("_amax", amax_.detach().clone());
  if (pre_quant_scale_.defined()) {
    pre_quant_scale_ = register_buffer("_pre_quant_scale", pre_quant_scale_.detach().clone());
  }
  if (learn_amax_) {
    double init = 1.0;
    if (options.quant_desc().has_amax()) init = options.quant_desc().amax_values().front();
    clip = register_module("clip", Clip(ClipOptions(-init, init).learn_min(true).learn_max(true)));
  }
}

void TensorQuantizerImpl::enable_calib() {
  TORCH_CHECK(calibrator_, "TensorQuantizer::enable_calib: calibrator was not created, cannot ",
              "enable calibration");
  if_calib_ = true;
}

void TensorQuantizerImpl::enable_clip() {
  TORCH_CHECK_VALUE(learn_amax_, "TensorQuantizer::enable_clip: learn_amax is false, cannot ",
                    "enable the clip stage (use a descriptor with learn_amax(true))");
  clip->clip_value_min.set_requires_grad(true);
  clip->clip_value_max.set_requires_grad(true);
  if_clip_ = true;
}

void TensorQuantizerImpl::disable_clip() {
  TORCH_CHECK_VALUE(learn_amax_, "TensorQuantizer::disable_clip: learn_amax is false, there is ",
                    "no clip stage");
  clip->clip_value_min.set_requires_grad(false);
  clip->clip_value_max.set_requires_grad(false);
  if_clip_ = false;
}

c10::Device TensorQuantizerImpl::module_device() const {
  for (const auto& b : buffers()) return b.device();
  for (const auto& p : parameters()) return p.device();
  return c10::Device(c10::kCPU);
}

void TensorQuantizerImpl::set_amax(const at::Tensor& value) {
  TORCH_CHECK_VALUE(value.defined(), "TensorQuantizer::set_amax: got an undefined tensor");
  at::NoGradGuard no_grad;
  if (!amax_.defined()) {
    amax_ = register_buffer("_amax", value.detach().to(module_device(), at::kFloat).clone());
    return;
  }
  TORCH_CHECK_VALUE(amax_.sizes() == value.sizes(), "TensorQuantizer::set_amax: changing the ",
                    "shape of amax is not allowed (current ", amax_.sizes(), ", new ",
                    value.sizes(), ")");
  amax_.copy_(value.detach());
}

void TensorQuantizerImpl::set_amax(double value) { set_amax(at::scalar_tensor(value, at::kFloat)); }

void TensorQuantizerImpl::load_calib_amax(const calib::ComputeAmaxOptions& options_, bool strict) {
  TORCH_CHECK(calibrator_, "TensorQuantizer::load_calib_amax: calibrator not created");
  c10::optional<at::Tensor> calib_amax = calibrator_->compute_amax(options_);
  if (!calib_amax) {
    TORCH_CHECK(!strict, "TensorQuantizer::load_calib_amax: the ", calibrator_->name(),
                " returned no amax: it has not seen any tensor. Pass strict=false to set amax to "
                "NaN instead");
    TORCH_WARN("TensorQuantizer::load_calib_amax: the calibrator has not seen any tensor; amax ",
               "set to NaN");
    calib_amax = at::scalar_tensor(std::numeric_limits<double>::quiet_NaN(), at::kFloat);
  }
  set_amax(*calib_amax);
}

void TensorQuantizerImpl::init_learn_amax() {
  TORCH_CHECK(learn_amax_, "TensorQuantizer::init_learn_amax: called with learn_amax=false");
  TORCH_CHECK(amax_.defined(), "TensorQuantizer::init_learn_amax: there is no amax to start ",
              "from (set or calibrate amax first)");
  at::NoGradGuard no_grad;
  const at::Tensor init = amax_.numel() == 1 ? amax_.reshape({}) : amax_.max();
  clip->clip_value_min.copy_(-init);
  clip->clip_value_max.copy_(init);
}

double TensorQuantizerImpl::maxbound() const {
  if (num_bits_.is_e4m3()) return 448.0;
  return static_cast<double>((int64_t{1} << (num_bits_.bits() - 1 + (unsigned_ ? 1 : 0))) - 1);
}

at::Tensor TensorQuantizerImpl::step_size() const {
  TORCH_CHECK(amax_.defined(), "TensorQuantizer::step_size: undefined under dynamic amax (no ",
              "_amax); set or calibrate amax first");
  return amax_ / maxbound();
}

void TensorQuantizerImpl::set_pre_quant_scale(const at::Tensor& value) {
  TORCH_CHECK_VALUE(value.defined(), "TensorQuantizer::set_pre_quant_scale: got an undefined ",
                    "tensor");
  at::NoGradGuard no_grad;
  if (!pre_quant_scale_.defined()) {
    pre_quant_scale_ = register_buffer("_pre_quant_scale", value.detach().clone());
    return;
  }
  TORCH_CHECK_VALUE(pre_quant_scale_.sizes() == value.sizes(),
                    "TensorQuantizer::set_pre_quant_scale: changing the shape of pre_quant_scale ",
                    "is not allowed (current ", pre_quant_scale_.sizes(), ", new ", value.sizes(),
                    ")");
  pre_quant_scale_.copy_(value.detach());
}

void TensorQuantizerImpl::set_num_bits(NumBits value) {
  num_bits_ = value;
  if (calibrator_) calibrator_->set_num_bits(value);
}

void TensorQuantizerImpl::set_unsigned(bool value) {
  unsigned_ = value;
  if (calibrator_) calibrator_->set_unsigned(value);
}

void TensorQuantizerImpl::set_axis(c10::optional<std::vector<int64_t>> axis) {
  TORCH_CHECK(!amax_.defined(), "TensorQuantizer::set_axis: this quantizer already has an amax of ",
              "shape ", amax_.sizes(), "; changing its axis would break it");
  QuantDescriptor desc = options.quant_desc();
  desc.num_bits(num_bits_).is_unsigned(unsigned_).narrow_range(narrow_range_);
  if (axis && !axis->empty()) {
    desc.axis(*axis);
  } else {
    desc.clear_axis();
  }
  options.quant_desc(desc);
  axis_ = desc.axis();
  calibrator_ = calib::CalibratorHandle(calib::make_calibrator(desc));
}

void TensorQuantizerImpl::set_use_fb_fake_quant(bool value) { g_use_fb_fake_quant = value; }
bool TensorQuantizerImpl::use_fb_fake_quant() { return g_use_fb_fake_quant; }

at::Tensor TensorQuantizerImpl::get_amax(const at::Tensor& inputs) const {
  at::Tensor amax;
  if (amax_.defined()) {
    amax = amax_.device() == inputs.device() ? amax_ : amax_.to(inputs.device());
  } else {
    const at::Tensor x = inputs.detach();
    if (x.numel() == 0) {
      amax = at::ones({}, x.options());  // no values (and no max): any amax gives the empty output
    } else if (!axis_) {
      amax = calib::detail::abs_max_all(x);
    } else {
      const std::vector<int64_t> dims = reduce_dims_for(x, axis_);
      if (dims.empty()) {
        amax = x.abs();
      } else if (calib::detail::reduces_all_but_first(x, dims)) {
        amax = calib::detail::abs_max_per_row(x);  // per output channel: the common case
      } else {
        amax = at::linalg_vector_norm(x, std::numeric_limits<double>::infinity(), dims,
                                      /*keepdim=*/true);
      }
    }
  }
  if (scale_amax_) amax = amax.detach() * *scale_amax_;
  return amax;
}

at::Tensor TensorQuantizerImpl::fb_fake_quant(const at::Tensor& inputs,
                                              const at::Tensor& amax) const {
  TORCH_CHECK(!num_bits_.is_e4m3(), "TensorQuantizer: export mode (use_fb_fake_quant) supports ",
              "integer num_bits only, got (4, 3)");
  TORCH_CHECK_TYPE(inputs.scalar_type() != at::kHalf && amax.scalar_type() != at::kHalf,
                   "TensorQuantizer: exporting in fp16 is not supported; export in fp32 "
                   "(disable autocast)");
  const auto bound = static_cast<int64_t>(maxbound());
  const int64_t quant_min = unsigned_ ? 0 : -bound - 1;
  if (amax.numel() == 1) {
    return at::fake_quantize_per_tensor_affine(inputs, amax.item<double>() / bound, 0, quant_min,
                                               bound);
  }
  const at::Tensor squeezed = amax.squeeze().detach();
  TORCH_CHECK_VALUE(squeezed.dim() == 1, "TensorQuantizer: export mode supports a single ",
                    "quantization axis, got amax of shape ", amax.sizes());
  int64_t quant_dim = 0;
  while (amax.size(quant_dim) != squeezed.size(0)) ++quant_dim;
  const at::Tensor scale = (squeezed / bound).to(at::kFloat);
  return at::fake_quantize_per_channel_affine(
      inputs, scale, at::zeros_like(scale, scale.options().dtype(at::kInt)), quant_dim, quant_min,
      bound);
}

at::Tensor TensorQuantizerImpl::quant_forward(const at::Tensor& inputs) {
  at::Tensor x = inputs;
  at::Tensor amax;
  if (learn_amax_) {
    x = clip(inputs);
    amax = at::maximum(-clip->clip_value_min, clip->clip_value_max).detach().to(x.device());
  } else {
    amax = get_amax(inputs);
  }
  if (!fake_quant_) {
    // Upstream calls tensor_quant without narrow_range, so real quant is always narrow.
    auto [outputs, scale] = tensor_quant(x, amax, num_bits_.bits(), unsigned_, true);
    scale_ = scale;
    return outputs;
  }
  if (use_fb_fake_quant()) return fb_fake_quant(x, amax);
  if (num_bits_.is_e4m3()) return scaled_e4m3(x, amax);
  return fake_tensor_quant(x, amax, num_bits_.bits(), unsigned_, narrow_range_);
}

c10::optional<TensorQuantizerImpl::FakeQuantArgs> TensorQuantizerImpl::plain_fake_quant_args(
    const at::Tensor& inputs) const {
  if (disabled_ || !if_quant_ || if_calib_ || if_clip_ || !fake_quant_ || learn_amax_ ||
      pre_quant_scale_.defined() || num_bits_.is_e4m3() || use_fb_fake_quant()) {
    return c10::nullopt;
  }
  return FakeQuantArgs{get_amax(inputs), num_bits_.bits(), unsigned_, narrow_range_};
}

at::Tensor TensorQuantizerImpl::forward(const at::Tensor& inputs) {
  at::Tensor x = inputs;
  if (pre_quant_scale_.defined()) x = x * pre_quant_scale_.to(x.device());
  if (disabled_) return x;
  if (if_calib_) {
    TORCH_CHECK(calibrator_, "TensorQuantizer::forward: calibrator was not created");
    calibrator_->collect(x);
  }
  // Upstream also runs the clip stage when the quant stage follows and discards its result; the
  // quant stage clips again, so skipping it changes nothing.
  if (if_quant_) return quant_forward(x);
  if (if_clip_) return clip(x);
  return x;
}

std::string TensorQuantizerImpl::short_amax() const {
  if (!amax_.defined()) return "dynamic";
  if (amax_.numel() == 1) return detail::py_fixed(amax_.item<double>(), 4);
  return "[" + detail::py_fixed(amax_.min().item<double>(), 4) + ", " +
         detail::py_fixed(amax_.max().item<double>(), 4) + "](" + std::to_string(amax_.numel()) +
         ")";
}

std::string TensorQuantizerImpl::extra_repr() const {
  if (disabled_) return "disabled";
  std::string s = unsigned_ ? "unsigned " : "";
  s += num_bits_.str() + "bit";
  if (narrow_range_) s += " narrow";
  if (fake_quant_) s += " fake";
  if (!axis_) {
    s += " per-tensor";
  } else if (options.quant_desc().axis_is_int()) {
    s += " axis=" + std::to_string(axis_->front());
  } else {
    s += " axis=" + detail::py_tuple_repr(*axis_);
  }
  s += " amax=" + short_amax();
  if (scale_amax_ && *scale_amax_ != 0.0) s += " *" + detail::py_float_repr(*scale_amax_);
  if (pre_quant_scale_.defined()) s += " pre_quant_scale";
  if (learn_amax_) s += " learned";
  if (calibrator_) s += " calibrator=" + calibrator_->name();
  if (scale_.defined()) {
    // Per-channel scales print as [min, max](n) (upstream prints the whole tensor).
    s += " scale=";
    s += scale_.numel() == 1 ? detail::py_float_repr(scale_.item<double>())
                             : "[" + detail::py_fixed(scale_.min().item<double>(), 4) + ", " +
                                   detail::py_fixed(scale_.max().item<double>(), 4) + "](" +
                                   std::to_string(scale_.numel()) + ")";
  }
  if (if_quant_) s += " quant";
  if (if_clip_) s += " clip";
  if (if_calib_) s += " calib";
  return s;
}

void TensorQuantizerImpl::pretty_print(std::ostream& stream) const {
  stream << "TensorQuantizer(" << extra_repr() << ")";
}

void TensorQuantizerImpl::load(torch::serialize::InputArchive& archive) {
  // A state holding buffers this quantizer lacks creates them (upstream forces CUDA); a state
  // lacking a buffer this quantizer has, or with another shape, is an error.
  struct Optional {
    const char* name;
    at::Tensor* member;
  };
  for (const Optional& b :
       {Optional{"_amax", &amax_}, Optional{"_pre_quant_scale", &pre_quant_scale_}}) {
    at::Tensor stored;
    const bool present = archive.try_read(b.name, stored, /*is_buffer=*/true);
    if (!present) {
      TORCH_CHECK(!b.member->defined(), "TensorQuantizer::load: the state has no '", b.name,
                  "' but this quantizer has one (shape ", b.member->sizes(),
                  "); was it saved before calibration?");
      continue;
    }
    if (b.member->defined()) {
      TORCH_CHECK(b.member->sizes() == stored.sizes(), "TensorQuantizer::load: '", b.name,
                  "' has shape ", stored.sizes(), " in the state but ", b.member->sizes(),
                  " in this quantizer");
    } else {
      *b.member = register_buffer(b.name, stored.to(module_device()));
    }
  }
  torch::nn::Module::load(archive);
}

}  // namespace nn
}  // namespace torchquant
