#pragma once
// fake_affine_tensor_quant's argument checks, parameters and ATen composition, shared by its CPU
// kernel (ops/cpu/affine_kernel.cpp) and its composite registration for other devices.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace torchquant {
namespace detail {

/// The checked arguments of one fake_affine_tensor_quant call. `step` and `quant_zero` are 0-d
/// tensors in the ranges' promoted dtype, computed by the same ATen ops as upstream.
struct AffineParams {
  at::Tensor min_range;
  at::Tensor max_range;
  at::Tensor step;        // (max_range - min_range) / (2^num_bits - 1)
  at::Tensor quant_zero;  // round(min_range / step) - min_bound
  double min_bound = 0;   // -2^(num_bits-1)
  double max_bound = 0;   // 2^(num_bits-1) - 1
};

/// Checks what can be checked without reading values: floating inputs and ranges, one-element
/// ranges on the inputs' device, num_bits in [2, 16].
void check_affine_args(const char* fn, const at::Tensor& inputs, const at::Tensor& min_range,
                       const at::Tensor& max_range, int64_t num_bits);

/// Checks the arguments (floating inputs; one-element, finite, ordered ranges on the inputs'
/// device; num_bits in [2, 16]; a step that is positive and finite in the ranges' dtype and a
/// finite zero point) and computes the parameters. `fn` names the op in messages.
AffineParams prepare_affine_params(const char* fn, const at::Tensor& inputs,
                                   const at::Tensor& min_range, const at::Tensor& max_range,
                                   int64_t num_bits);

/// Upstream's computation as separate ATen ops, on any device:
/// `(clamp(round(x / step) - quant_zero, min_bound, max_bound) + quant_zero) * step`.
at::Tensor fake_affine_composite(const at::Tensor& inputs, const AffineParams& p);

/// Upstream's gradient mask as ATen ops: `min_range <= x <= max_range`, bool of x's shape.
at::Tensor affine_mask_composite(const at::Tensor& inputs, const AffineParams& p);

}  // namespace detail
}  // namespace torchquant
