#pragma once
// Argument checks and parameter preparation shared by the CPU and CUDA quantization kernels.

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>

namespace torchquant {
namespace detail {

/// Amax values at or below this are treated as zero (smallest fp16 subnormal), as upstream.
constexpr double kZeroAmaxThreshold = 1.0 / (1 << 24);

/// Integer range of a quantizer.
struct IntBounds {
  double min_bound;
  double max_bound;
};

/// Checks num_bits and returns the integer range; `fn` names the calling op in messages.
IntBounds int_bounds(const char* fn, int64_t num_bits, bool is_unsigned, bool narrow_range);

/// Checks that `t` is float32, float64, float16 or bfloat16.
void check_floating(const char* fn, const char* what, const at::Tensor& t);

/// How amax maps onto the input, viewed as [outer, channels, inner].
struct ChannelLayout {
  enum class Kind { kPerTensor, kPerChannel, kGeneral };
  Kind kind = Kind::kPerTensor;
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};

/// Everything a kernel needs besides the data. The per-channel tensors are contiguous, on the
/// input's device, in the compute dtype (double for float64 inputs, float otherwise) and hold
/// `layout.channels` values (per-tensor and per-channel) or `inputs.numel()` values (general).
struct QuantParams {
  ChannelLayout layout;
  at::Tensor amax;       // for the straight-through mask |x| <= amax
  at::Tensor scale_mul;  // max_bound / amax, 0 where amax <= 2^-24
  at::Tensor scale_div;  // max_bound / amax, 1 where amax <= 2^-24 (fp16 inputs: rounded to fp16)
  at::Tensor returned_scale;  // scale_div in amax's shape and the input dtype (tensor_quant)
  double min_bound = 0;
  double max_bound = 0;
  bool check_negative = false;  // unsigned: the kernel must report negative inputs
};

/// A device kernel: writes quantized (fake=false) or fake-quantized values of `inputs` (contiguous)
/// into `out` (contiguous, same shape and dtype) and, when `mask` is defined, `|x| <= amax`: on the
/// CPU as packed bits (uint8, ceil(numel / 8) bytes, ops/cpu/mask_bits.h), on other devices as
/// bool of the input's shape. Returns true when a negative input was seen (checked for unsigned
/// quantizers).
using QuantKernelFn = bool (*)(const at::Tensor& inputs, const QuantParams& params, bool fake,
                               const at::Tensor& out, const at::Tensor& mask);

/// A device kernel for `grad * mask` (bool of grad's shape, or on the CPU also packed bits).
using SteBackwardFn = void (*)(const at::Tensor& grad, const at::Tensor& mask,
                               const at::Tensor& grad_input);

/// A device kernel for scaled_e4m3: `e4m3(x * scale) / scale` (0 where |x| < 2^-24 or where
/// `zero` is set), and the mask |x| <= mask_amax when `mask` is defined (as QuantKernelFn's: packed
/// bits on the CPU, bool elsewhere).
using E4m3KernelFn = void (*)(const at::Tensor& inputs, float scale, bool zero, float mask_amax,
                              const at::Tensor& out, const at::Tensor& mask);

/// Checks what can be checked without reading values (dtypes, devices, shapes, num_bits) and
/// returns the params with layout, bounds and check_negative filled in (no scales yet).
QuantParams check_quant_args(const char* fn, const at::Tensor& inputs, const at::Tensor& amax,
                             int64_t num_bits, bool is_unsigned, bool narrow_range);

/// Checks the arguments of a (fake) integer quantization and prepares its parameters.
QuantParams prepare_quant_params(const char* fn, const at::Tensor& inputs, const at::Tensor& amax,
                                 int64_t num_bits, bool is_unsigned, bool narrow_range, bool fake);

/// Outputs of one quantization call; `mask` is undefined unless asked for.
struct QuantResult {
  at::Tensor out;
  at::Tensor scale;
  at::Tensor mask;
};

/// The straight-through mask for `inputs` in the device kernels' format: packed bits on the CPU
/// (uint8, ceil(numel / 8) bytes, ops/cpu/mask_bits.h), one bool per element elsewhere. A new one,
/// or `*mask` after checking that it is already in that format and contiguous.
at::Tensor prepare_mask(const char* fn, const at::Tensor& inputs, const at::Tensor* mask = nullptr);

/// Runs an integer quantization through `kernel`. With `out` given, writes there (it may alias
/// `inputs`: negative unsigned inputs are then rejected before anything is written).
QuantResult run_quant(const char* fn, QuantKernelFn kernel, const at::Tensor& inputs,
                      const at::Tensor& amax, int64_t num_bits, bool is_unsigned, bool narrow_range,
                      bool fake, bool want_mask, const at::Tensor* out = nullptr,
                      const at::Tensor* mask_out = nullptr);

/// Runs scaled_e4m3 through `kernel`.
QuantResult run_e4m3(const char* fn, E4m3KernelFn kernel, const at::Tensor& inputs,
                     const c10::optional<at::Tensor>& amax, int64_t E, int64_t M, bool want_mask);

/// Runs `grad * mask` through `kernel` after checking shapes; with `in_place`, into `grad` itself
/// (the kernel then gets the same tensor as grad and grad_input).
at::Tensor run_ste_backward(SteBackwardFn kernel, const at::Tensor& grad, const at::Tensor& mask,
                            bool in_place = false);

/// Registers every quantization op of one dispatch key (CPU or CUDA) on its kernels.
template <QuantKernelFn kQuant, E4m3KernelFn kE4m3, SteBackwardFn kSte>
void register_quant_kernels(torch::Library& m) {
  m.impl("tensor_quant", [](const at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns,
                            bool nr) {
    auto r = run_quant("torchquant::tensor_quant", kQuant, x, amax, nb, uns, nr, false, false);
    return std::make_tuple(r.out, r.scale);
  });
  m.impl("fake_tensor_quant", [](const at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns,
                                 bool nr) {
    return run_quant("torchquant::fake_tensor_quant", kQuant, x, amax, nb, uns, nr, true, false)
        .out;
  });
  m.impl("fake_tensor_quant.out",
         [](const at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns, bool nr,
            at::Tensor& out) -> at::Tensor& {
           run_quant("torchquant::fake_tensor_quant_out", kQuant, x, amax, nb, uns, nr, true, false,
                     &out);
           return out;
         });
  m.impl("fake_tensor_quant_",
         [](at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns, bool nr) -> at::Tensor& {
           run_quant("torchquant::fake_tensor_quant_", kQuant, x, amax, nb, uns, nr, true, false,
                     &x);
           return x;
         });
  m.impl("_tensor_quant_with_mask", [](const at::Tensor& x, const at::Tensor& amax, int64_t nb,
                                       bool uns, bool nr) {
    auto r = run_quant("torchquant::tensor_quant", kQuant, x, amax, nb, uns, nr, false, true);
    return std::make_tuple(r.out, r.scale, r.mask);
  });
  m.impl("_fake_tensor_quant_with_mask", [](const at::Tensor& x, const at::Tensor& amax, int64_t nb,
                                            bool uns, bool nr) {
    auto r = run_quant("torchquant::fake_tensor_quant", kQuant, x, amax, nb, uns, nr, true, true);
    return std::make_tuple(r.out, r.mask);
  });
  m.impl("_fake_tensor_quant_with_mask.out",
         [](const at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns, bool nr,
            at::Tensor& out, at::Tensor& mask) -> std::tuple<at::Tensor&, at::Tensor&> {
           run_quant("torchquant::_fake_tensor_quant_with_mask_out", kQuant, x, amax, nb, uns, nr,
                     true, true, &out, &mask);
           return {out, mask};
         });
  m.impl("scaled_e4m3",
         [](const at::Tensor& x, const c10::optional<at::Tensor>& amax, int64_t E, int64_t M) {
           return run_e4m3("torchquant::scaled_e4m3", kE4m3, x, amax, E, M, false).out;
         });
  m.impl("_scaled_e4m3_with_mask",
         [](const at::Tensor& x, const c10::optional<at::Tensor>& amax, int64_t E, int64_t M) {
           auto r = run_e4m3("torchquant::scaled_e4m3", kE4m3, x, amax, E, M, true);
           return std::make_tuple(r.out, r.mask);
         });
  m.impl("_ste_backward", [](const at::Tensor& grad, const at::Tensor& mask) {
    return run_ste_backward(kSte, grad, mask);
  });
  m.impl("_ste_backward_", [](at::Tensor& grad, const at::Tensor& mask) -> at::Tensor& {
    run_ste_backward(kSte, grad, mask, true);
    return grad;
  });
}

/// True when autograd must record `t`.
bool needs_grad(const at::Tensor& t);

}  // namespace detail
}  // namespace torchquant
