// fake_affine_tensor_quant: gemmlowp-style quantization with a zero point, composed of ATen ops in
// upstream's order (so it runs on every device and matches upstream bit for bit).

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <torch/library.h>

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

at::Tensor fake_affine_tensor_quant_impl(const at::Tensor& inputs, const at::Tensor& min_range,
                                         const at::Tensor& max_range, int64_t num_bits) {
  constexpr const char* fn = "torchquant::fake_affine_tensor_quant";
  check_floating(fn, "inputs", inputs);
  check_range_tensor(fn, "min_range", min_range, inputs);
  check_range_tensor(fn, "max_range", max_range, inputs);
  TORCH_CHECK(num_bits >= 2 && num_bits <= 16, fn, ": num_bits must be in [2, 16], got ", num_bits);
  const double lo = min_range.item<double>(), hi = max_range.item<double>();
  // An infinite range gives an infinite step and NaN outputs.
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi), fn,
              ": min_range and max_range must be finite, got min_range=", lo,
              " and max_range=", hi);
  TORCH_CHECK(lo < hi, fn, ": expected min_range < max_range, got min_range=", lo,
              " and max_range=", hi);
  const double min_bound = -std::ldexp(1.0, static_cast<int>(num_bits - 1));
  const double max_bound = std::ldexp(1.0, static_cast<int>(num_bits - 1)) - 1.0;
  const at::Tensor step =
      (max_range - min_range) / (std::ldexp(1.0, static_cast<int>(num_bits)) - 1.0);
  const at::Tensor quant_zero = at::round(min_range / step) - min_bound;
  const at::Tensor quantized =
      at::clamp(at::round(inputs / step) - quant_zero, min_bound, max_bound);
  return (quantized + quant_zero) * step;
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CompositeExplicitAutograd, m) {
  m.impl("fake_affine_tensor_quant", &torchquant::detail::fake_affine_tensor_quant_impl);
}
