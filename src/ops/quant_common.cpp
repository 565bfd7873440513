#include "ops/quant_common.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/mask_bits.h"

namespace torchquant {
namespace detail {

bool needs_grad(const at::Tensor& t) {
  return t.defined() && t.requires_grad() && at::GradMode::is_enabled();
}

IntBounds int_bounds(const char* fn, int64_t num_bits, bool is_unsigned, bool narrow_range) {
  const int64_t lowest = is_unsigned ? 1 : 2;
  TORCH_CHECK(
      num_bits >= lowest && num_bits <= 16, fn, ": num_bits must be in [", lowest, ", 16] for ",
      (is_unsigned ? "unsigned" : "signed"), " quantization, got ", num_bits,
      (num_bits == 1 && !is_unsigned ? " (1-bit signed leaves the empty range [0, 0])" : ""));
  const double max_bound = std::ldexp(1.0, static_cast<int>(num_bits - 1 + is_unsigned)) - 1.0;
  const double min_bound = is_unsigned ? 0.0 : (narrow_range ? -max_bound : -max_bound - 1.0);
  return {min_bound, max_bound};
}

void check_floating(const char* fn, const char* what, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), fn, ": ", what, " is an undefined tensor");
  const auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, fn,
              ": ", what, " must be float32, float64, float16 or bfloat16, got ", st);
}

namespace {

ChannelLayout find_layout(const char* fn, at::IntArrayRef in_sizes, at::IntArrayRef amax_sizes) {
  const int64_t rank = static_cast<int64_t>(in_sizes.size());
  const int64_t arank = static_cast<int64_t>(amax_sizes.size());
  bool ok = arank <= rank;
  std::vector<int64_t> non_unit;
  for (int64_t i = 0; ok && i < arank; ++i) {
    const int64_t a = amax_sizes[arank - 1 - i];
    const int64_t d = rank - 1 - i;
    if (a == 1) continue;
    if (a != in_sizes[d]) ok = false;
    non_unit.push_back(d);
  }
  TORCH_CHECK(ok, fn, ": amax of shape ", amax_sizes, " does not broadcast to inputs of shape ",
              in_sizes,
              "; expected a 0-d or one-element amax (per tensor) or one with size 1 in "
              "every dim but the channel dim (e.g. [C,1,1,1])");
  ChannelLayout layout;
  if (non_unit.empty()) return layout;
  if (non_unit.size() > 1) {
    layout.kind = ChannelLayout::Kind::kGeneral;
    return layout;
  }
  const int64_t d = non_unit[0];
  layout.kind = ChannelLayout::Kind::kPerChannel;
  layout.channels = in_sizes[d];
  for (int64_t i = 0; i < d; ++i) layout.outer *= in_sizes[i];
  for (int64_t i = d + 1; i < rank; ++i) layout.inner *= in_sizes[i];
  return layout;
}

// Lays a per-amax-element tensor out the way the kernels read it.
at::Tensor kernel_view(const at::Tensor& t, const ChannelLayout& layout, at::IntArrayRef in_sizes) {
  if (layout.kind == ChannelLayout::Kind::kGeneral) {
    return t.expand(in_sizes).contiguous().reshape({-1});
  }
  return t.reshape({-1}).contiguous();
}

void check_amax_extremes(const char* fn, bool nan, double amin, double amax_max);

void check_amax_values(const char* fn, const at::Tensor& amax) {
  double amin = 0, amax_max = 0;
  if (amax.numel() == 1) {
    amin = amax_max = amax.item<double>();
  } else {  // one device-to-host copy for both
    const at::Tensor both = at::stack({amax.min(), amax.max()}).to(at::kCPU, at::kDouble);
    amin = both.data_ptr<double>()[0];
    amax_max = both.data_ptr<double>()[1];
  }
  check_amax_extremes(fn, std::isnan(amin), amin, amax_max);
}

void check_amax_extremes(const char* fn, bool nan, double amin, double amax_max) {
  // A dynamic amax (TensorQuantizer without _amax) is max |x|: NaN or Inf there means the inputs.
  TORCH_CHECK(!nan, fn,
              ": amax contains NaN; expected finite non-negative values (a dynamic amax, max |x|, "
              "is NaN when the inputs contain NaN)");
  TORCH_CHECK(amin >= 0, fn, ": amax must be non-negative, got a minimum of ", amin);
  // +Inf would give a zero scale and 0/0 = NaN outputs.
  TORCH_CHECK(!std::isinf(amax_max), fn,
              ": amax contains Inf; expected finite non-negative values (a dynamic amax, max |x|, "
              "is Inf when the inputs contain Inf)");
}

}  // namespace

QuantParams check_quant_args(const char* fn, const at::Tensor& inputs, const at::Tensor& amax,
                             int64_t num_bits, bool is_unsigned, bool narrow_range) {
  check_floating(fn, "inputs", inputs);
  check_floating(fn, "amax", amax);
  TORCH_CHECK(amax.device() == inputs.device(), fn, ": amax is on ", amax.device(),
              " but inputs are on ", inputs.device(), "; expected both on the same device");
  TORCH_CHECK(amax.numel() > 0, fn, ": amax is empty; expected at least one value");
  QuantParams p;
  p.layout = find_layout(fn, inputs.sizes(), amax.sizes());
  const IntBounds bounds = int_bounds(fn, num_bits, is_unsigned, narrow_range);
  p.min_bound = bounds.min_bound;
  p.max_bound = bounds.max_bound;
  p.check_negative = is_unsigned;
  return p;
}

namespace {

// float32 inputs with a contiguous float32 CPU amax (training and calibration on the CPU): the
// checks and scales of prepare_quant_params in one loop over amax's values instead of a dozen
// small ATen ops (about 50 us a call: 10% of a small CNN's forward). Same values bit for bit: the
// float32 division max_bound / amax and the <= 2^-24 test are the ones ATen computes there.
bool prepare_cpu_f32(const char* fn, const at::Tensor& inputs, const at::Tensor& amax,
                     QuantParams& p) {
  if (!amax.is_cpu() || amax.scalar_type() != at::kFloat || inputs.scalar_type() != at::kFloat ||
      !amax.is_contiguous() || p.layout.kind == ChannelLayout::Kind::kGeneral) {
    return false;
  }
  const int64_t n = amax.numel();
  const float* a = amax.const_data_ptr<float>();
  bool nan = false;
  double amin = std::numeric_limits<double>::infinity();
  double amax_max = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(a[i])) {
      nan = true;
    } else {
      amin = std::min(amin, static_cast<double>(a[i]));
      amax_max = std::max(amax_max, static_cast<double>(a[i]));
    }
  }
  check_amax_extremes(fn, nan, amin, amax_max);
  at::Tensor mul = at::empty({n}, amax.options());
  at::Tensor div = at::empty({n}, amax.options());
  float* m = mul.data_ptr<float>();
  float* d = div.data_ptr<float>();
  const auto bound = static_cast<float>(p.max_bound);
  const auto threshold = static_cast<float>(kZeroAmaxThreshold);
  for (int64_t i = 0; i < n; ++i) {
    const float scale = bound / a[i];
    const bool zero = a[i] <= threshold;
    m[i] = zero ? 0.f : scale;
    d[i] = zero ? 1.f : scale;
  }
  p.amax = amax.reshape({-1});
  p.scale_mul = mul;
  p.scale_div = div;
  p.returned_scale = div.view(amax.sizes());
  return true;
}

}  // namespace

QuantParams prepare_quant_params(const char* fn, const at::Tensor& inputs, const at::Tensor& amax,
                                 int64_t num_bits, bool is_unsigned, bool narrow_range, bool fake) {
  QuantParams p = check_quant_args(fn, inputs, amax, num_bits, is_unsigned, narrow_range);
  if (prepare_cpu_f32(fn, inputs, amax, p)) return p;
  check_amax_values(fn, amax);

  // The scale is a true float division in amax's precision (fp32 for 16-bit amax), as upstream.
  const bool reduced = amax.scalar_type() == at::kHalf || amax.scalar_type() == at::kBFloat16;
  const at::Tensor amax_s = reduced ? amax.to(at::kFloat) : amax;
  const at::Tensor scale = at::full_like(amax_s, p.max_bound).div_(amax_s);
  const at::Tensor zero = amax_s.le(kZeroAmaxThreshold);
  const at::Tensor scale_div = scale.masked_fill(zero, 1.0);
  const auto in_type = inputs.scalar_type();
  if (!fake && in_type == at::kHalf) {
    const double smax = scale_div.max().item<double>();
    TORCH_CHECK(smax <= 65504.0, fn, ": scale ", smax,
                " (max_bound / amax) overflows float16 for "
                "the smallest amax ",
                amax.min().item<double>(), "; use a larger amax or a float32 input");
  }
  p.returned_scale = scale_div.to(in_type);

  const auto acc = in_type == at::kDouble ? at::kDouble : at::kFloat;
  const auto sizes = inputs.sizes();
  p.amax = kernel_view(amax_s.to(acc), p.layout, sizes);
  p.scale_mul = kernel_view(scale.masked_fill(zero, 0.0).to(acc), p.layout, sizes);
  // fp16 fake quant divides in fp16 (q.half() / scale.half()), as upstream.
  const at::Tensor div = in_type == at::kHalf ? scale_div.to(at::kHalf).to(acc) : scale_div.to(acc);
  p.scale_div = kernel_view(div, p.layout, sizes);
  return p;
}

namespace {

at::Tensor prepare_out(const char* fn, const at::Tensor& inputs, const at::Tensor* out) {
  if (out == nullptr) return at::empty(inputs.sizes(), inputs.options());
  TORCH_CHECK(out->scalar_type() == inputs.scalar_type() && out->device() == inputs.device(), fn,
              ": out must have the dtype and device of inputs (", inputs.scalar_type(), " on ",
              inputs.device(), "), got ", out->scalar_type(), " on ", out->device());
  TORCH_CHECK(out->sizes() == inputs.sizes(), fn, ": out has shape ", out->sizes(),
              " but inputs have shape ", inputs.sizes());
  return out->is_contiguous() ? *out : at::empty(inputs.sizes(), inputs.options());
}

void finish_out(const at::Tensor& computed, const at::Tensor* out) {
  if (out != nullptr && !computed.is_same(*out)) out->copy_(computed);
}

}  // namespace

at::Tensor prepare_mask(const char* fn, const at::Tensor& inputs, const at::Tensor* mask) {
  const bool packed = inputs.is_cpu();
  const auto dtype = packed ? at::kByte : at::kBool;
  const std::vector<int64_t> sizes =
      packed ? std::vector<int64_t>{packed_mask_bytes(inputs.numel())} : inputs.sizes().vec();
  if (mask == nullptr) return at::empty(sizes, inputs.options().dtype(dtype));
  TORCH_CHECK(mask->scalar_type() == dtype && mask->device() == inputs.device() &&
                  mask->sizes() == c10::IntArrayRef(sizes) && mask->is_contiguous(),
              fn, ": mask must be a contiguous ", dtype, " tensor of shape ", sizes, " on ",
              inputs.device(), ", got ", mask->scalar_type(), " of shape ", mask->sizes(), " on ",
              mask->device());
  return *mask;
}

QuantResult run_quant(const char* fn, QuantKernelFn kernel, const at::Tensor& inputs,
                      const at::Tensor& amax, int64_t num_bits, bool is_unsigned, bool narrow_range,
                      bool fake, bool want_mask, const at::Tensor* out,
                      const at::Tensor* mask_out) {
  QuantParams p = prepare_quant_params(fn, inputs, amax, num_bits, is_unsigned, narrow_range, fake);
  const bool aliased = out != nullptr && out->is_alias_of(inputs);  // any view of the same storage
  if (p.check_negative && (aliased || !inputs.device().is_cpu()) && inputs.numel() > 0) {
    // Checked before writing so that an in-place call loses nothing.
    TORCH_CHECK(!inputs.lt(0).any().item<bool>(), fn,
                ": negative values in inputs with unsigned=true; expected inputs >= 0");
    p.check_negative = false;
  }
  const at::Tensor x = inputs.contiguous();
  QuantResult r;
  r.out = prepare_out(fn, inputs, out);
  r.scale = p.returned_scale;
  if (want_mask) r.mask = prepare_mask(fn, inputs, mask_out);
  if (inputs.numel() > 0) {
    const bool negative = kernel(x, p, fake, r.out, r.mask);
    TORCH_CHECK(!(p.check_negative && negative), fn,
                ": negative values in inputs with unsigned=true; expected inputs >= 0");
  }
  finish_out(r.out, out);
  if (out != nullptr) r.out = *out;
  return r;
}

QuantResult run_e4m3(const char* fn, E4m3KernelFn kernel, const at::Tensor& inputs,
                     const c10::optional<at::Tensor>& amax, int64_t E, int64_t M, bool want_mask) {
  check_floating(fn, "inputs", inputs);
  TORCH_CHECK(E == 4 && M == 3, fn, ": only the E4M3 format (E=4, M=3) is supported, got E=", E,
              ", M=", M);
  float scale = 1.0f;
  bool zero = false;
  float mask_amax = 448.0f;
  if (amax.has_value() && amax->defined()) {
    check_floating(fn, "amax", *amax);
    TORCH_CHECK(amax->device() == inputs.device(), fn, ": amax is on ", amax->device(),
                " but inputs are on ", inputs.device(), "; expected both on the same device");
    TORCH_CHECK(amax->numel() == 1, fn,
                ": amax must hold one value (per-tensor scaling only), "
                "got shape ",
                amax->sizes());
    check_amax_values(fn, *amax);
    const float a = amax->item<float>();
    mask_amax = a;
    zero = a <= kZeroAmaxThreshold;
    // A true float32 division, like the integer path's max_bound / amax.
    scale = zero ? 1.0f : 448.0f / a;
  }
  QuantResult r;
  r.out = at::empty(inputs.sizes(), inputs.options());
  if (want_mask) r.mask = prepare_mask(fn, inputs, nullptr);
  if (inputs.numel() > 0) kernel(inputs.contiguous(), scale, zero, mask_amax, r.out, r.mask);
  return r;
}

at::Tensor run_ste_backward(SteBackwardFn kernel, const at::Tensor& grad, const at::Tensor& mask,
                            bool in_place) {
  const char* fn = in_place ? "torchquant::_ste_backward_" : "torchquant::_ste_backward";
  check_floating(fn, "grad", grad);
  TORCH_CHECK(grad.device() == mask.device(), fn, ": grad is on ", grad.device(),
              " but the mask is on ", mask.device());
  if (grad.is_cpu() && mask.scalar_type() == at::kByte) {  // packed bits, from the CPU kernels
    const int64_t bytes = packed_mask_bytes(grad.numel());
    TORCH_CHECK(mask.dim() == 1 && mask.numel() == bytes, fn, ": a packed mask for grad of shape ",
                grad.sizes(), " must hold ", bytes, " bytes, got shape ", mask.sizes());
  } else {
    TORCH_CHECK(mask.scalar_type() == at::kBool, fn, ": mask must be bool",
                grad.is_cpu() ? " (or packed uint8 bits)" : "", ", got ", mask.scalar_type());
    TORCH_CHECK(grad.sizes() == mask.sizes(), fn, ": grad of shape ", grad.sizes(),
                " does not match the mask of shape ", mask.sizes());
  }
  if (in_place && grad.is_contiguous()) {
    if (grad.numel() > 0) kernel(grad, mask.contiguous(), grad);
    return grad;
  }
  at::Tensor grad_input = at::empty(grad.sizes(), grad.options());
  if (grad.numel() > 0) kernel(grad.contiguous(), mask.contiguous(), grad_input);
  if (in_place) grad.copy_(grad_input);
  return in_place ? grad : grad_input;
}

}  // namespace detail
}  // namespace torchquant
