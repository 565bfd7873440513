#pragma once
/// \file
/// Quantization functions of torchquant, mirroring `pytorch_quantization.tensor_quant`.
///
/// Every function is also a dispatcher op in namespace `torchquant` (CPU and, when built, CUDA
/// kernels; straight-through gradients through autograd), so after
/// `torch.ops.load_library("libtorchquant.so")` Python and TorchScript can call
/// `torch.ops.torchquant.fake_tensor_quant(...)`.
///
/// Example:
/// \code
///   at::Tensor x = torch::rand({10});
///   at::Tensor amax = x.abs().max();
///   at::Tensor fq = torchquant::fake_tensor_quant(x, amax);          // 8 bit, narrow range
///   auto [q, scale] = torchquant::tensor_quant(x, amax, /*num_bits=*/4);
/// \endcode

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <tuple>

namespace torchquant {

/// Quantizes `inputs` to integers held in the input's floating dtype.
///
/// `scale = max_bound / amax` with `max_bound = 2^(num_bits-1+unsigned) - 1`;
/// `outputs = clamp(round_half_even(inputs * scale), min_bound, max_bound)`.
/// `amax` broadcasts against `inputs`: a 0-d or one-element tensor is per-tensor, a tensor with one
/// non-unit dim (e.g. `[C,1,1,1]`) is per-channel; any broadcastable shape works. Where
/// `amax <= 2^-24` the outputs are 0 and the returned scale is 1. Returns `(outputs, scale)` with
/// `scale` in the input dtype and the shape of `amax`. Gradient: straight through where
/// `|x| <= amax`, zero elsewhere.
///
/// \code
///   auto [q, scale] = torchquant::tensor_quant(x, torch::tensor(2.0f), 8, false, true);
///   at::Tensor dequant = q / scale;
/// \endcode
std::tuple<at::Tensor, at::Tensor> tensor_quant(const at::Tensor& inputs, const at::Tensor& amax,
                                                int64_t num_bits = 8, bool is_unsigned = false,
                                                bool narrow_range = true);

/// Fake quantization: `tensor_quant(...)` followed by `outputs / scale`, in the input dtype.
///
/// \code
///   at::Tensor y = torchquant::fake_tensor_quant(x, x.abs().amax({1, 2, 3}, true));  // per
///   channel
/// \endcode
at::Tensor fake_tensor_quant(const at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits = 8,
                             bool is_unsigned = false, bool narrow_range = true);

/// `fake_tensor_quant` writing into a preallocated `out` (same shape and dtype as `inputs`): avoids
/// the page faults of a fresh large output. No autograd.
///
/// \code
///   at::Tensor out = at::empty_like(x);
///   torchquant::fake_tensor_quant_out(out, x, amax);
/// \endcode
at::Tensor& fake_tensor_quant_out(at::Tensor& out, const at::Tensor& inputs, const at::Tensor& amax,
                                  int64_t num_bits = 8, bool is_unsigned = false,
                                  bool narrow_range = true);

/// In-place `fake_tensor_quant`; `inputs` must not require grad (use it on weights under
/// `torch::NoGradGuard`).
///
/// \code
///   torch::NoGradGuard no_grad;
///   torchquant::fake_tensor_quant_(weight, weight.abs().max());
/// \endcode
at::Tensor& fake_tensor_quant_(at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits = 8,
                               bool is_unsigned = false, bool narrow_range = true);

/// Gemmlowp-style affine fake quantization with a zero point:
/// `step = (max-min)/(2^n-1)`, `qz = round(min/step) + 2^(n-1)`,
/// `out = (clamp(round(x/step) - qz, -2^(n-1), 2^(n-1)-1) + qz) * step`. Gradient passes where
/// `min_range <= x <= max_range`. `min_range`/`max_range` are 0-d tensors (per-tensor only).
///
/// \code
///   at::Tensor y = torchquant::fake_affine_tensor_quant(x, torch::tensor(-1.f),
///   torch::tensor(3.f));
/// \endcode
at::Tensor fake_affine_tensor_quant(const at::Tensor& inputs, const at::Tensor& min_range,
                                    const at::Tensor& max_range, int64_t num_bits = 8);

/// FP8 E4M3 fake quantization: `e4m3(x * 448/amax) / (448/amax)` with round-to-nearest-even and
/// saturation to +-448 (bit-identical to CUDA's `__nv_fp8_e4m3`); outputs where `|x| < 2^-24` are
/// 0. Without `amax` no scaling is applied. Per-tensor amax only; only E=4, M=3 is supported.
/// Gradient passes where `|x| <= amax` (448 without amax).
///
/// \code
///   at::Tensor y = torchquant::scaled_e4m3(x, x.abs().max());
/// \endcode
at::Tensor scaled_e4m3(const at::Tensor& inputs,
                       const c10::optional<at::Tensor>& amax = c10::nullopt, int64_t E = 4,
                       int64_t M = 3);

}  // namespace torchquant
