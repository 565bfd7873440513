#include "ops/affine_common.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>

#include "ops/quant_common.h"

namespace torchquant {
namespace detail {
namespace {

void check_range_tensor(const char* fn, const char* what, const at::Tensor& t,
                        const at::Tensor& inputs) {
  check_floating(fn, what, t);
  TORCH_CHECK(t.numel() == 1, fn, ": ", what, " must hold one value (per-tensor only), got shape ",
              t.sizes());
  TORCH_CHECK(t.device() == inputs.device(), fn, ": ", what, " is on ", t.device(),
              " but inputs are on ", inputs.device(), "; expected the same device");
}

}  // namespace

void check_affine_args(const char* fn, const at::Tensor& inputs, const at::Tensor& min_range,
                       const at::Tensor& max_range, int64_t num_bits) {
  check_floating(fn, "inputs", inputs);
  check_range_tensor(fn, "min_range", min_range, inputs);
  check_range_tensor(fn, "max_range", max_range, inputs);
  TORCH_CHECK(num_bits >= 2 && num_bits <= 16, fn, ": num_bits must be in [2, 16], got ", num_bits);
}

AffineParams prepare_affine_params(const char* fn, const at::Tensor& inputs,
                                   const at::Tensor& min_range, const at::Tensor& max_range,
                                   int64_t num_bits) {
  check_affine_args(fn, inputs, min_range, max_range, num_bits);
  const double lo = min_range.item<double>(), hi = max_range.item<double>();
  // An infinite range gives an infinite step and NaN outputs.
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi), fn,
              ": min_range and max_range must be finite, got min_range=", lo,
              " and max_range=", hi);
  TORCH_CHECK(lo < hi, fn, ": expected min_range < max_range, got min_range=", lo,
              " and max_range=", hi);
  AffineParams p;
  p.min_range = min_range.reshape({});
  p.max_range = max_range.reshape({});
  p.min_bound = -std::ldexp(1.0, static_cast<int>(num_bits - 1));
  p.max_bound = std::ldexp(1.0, static_cast<int>(num_bits - 1)) - 1.0;
  p.step = (p.max_range - p.min_range) / (std::ldexp(1.0, static_cast<int>(num_bits)) - 1.0);
  p.quant_zero = at::round(p.min_range / p.step) - p.min_bound;
  // In a 16-bit range dtype the step can underflow to 0 or the difference overflow to Inf, and in
  // 16-bit inputs the zero point can overflow: every output would then be NaN.
  const double step = p.step.item<double>(), zero = p.quant_zero.item<double>();
  TORCH_CHECK(std::isfinite(step) && step > 0 && std::isfinite(zero), fn, ": min_range=", lo,
              " and max_range=", hi, " give the step ", step, " and the zero point ", zero, " in ",
              p.step.scalar_type(), " with num_bits=", num_bits,
              "; expected a positive finite step and a finite zero point (pass the range in a "
              "wider dtype)");
  TORCH_CHECK(std::isfinite(p.quant_zero.to(inputs.scalar_type()).item<double>()), fn,
              ": the zero point ", zero, " of min_range=", lo, " and max_range=", hi,
              " with num_bits=", num_bits, " overflows ", inputs.scalar_type(),
              " inputs; expected a range whose zero point the inputs' dtype holds");
  return p;
}

at::Tensor fake_affine_composite(const at::Tensor& inputs, const AffineParams& p) {
  const at::Tensor quantized =
      at::clamp(at::round(inputs / p.step) - p.quant_zero, p.min_bound, p.max_bound);
  return (quantized + p.quant_zero) * p.step;
}

at::Tensor affine_mask_composite(const at::Tensor& inputs, const AffineParams& p) {
  return at::logical_and(inputs.ge(p.min_range), inputs.le(p.max_range));
}

}  // namespace detail
}  // namespace torchquant
