// QuantConvNd's fused training path: conv(fq(x), fq(w)) as one autograd node that saves x and w
// (alive anyway: x is what the previous layer saved, w is a parameter) instead of fq(x), fq(w) and
// their two masks, and recomputes the quantization in backward. Gradients are bit-identical to
// the unfused graph: backward makes the same at::convolution_backward call on the same
// quantized operands and applies the same straight-through masks.

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/accumulate.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>

#include "ops/cpu/mask_bits.h"
#include "ops/quant_common.h"
#include "ops/quant_ops.h"
#include "torchquant/nn/modules/quant_conv.h"

namespace torchquant {
namespace nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Args = TensorQuantizerImpl::FakeQuantArgs;

std::atomic<bool> g_fused{true};

at::Tensor quantize(const at::Tensor& t, const at::Tensor& amax, const c10::IValue& args) {
  const auto list = args.toIntList();
  return ops::fake_tensor_quant(t, amax, list[0], list[1] != 0, list[2] != 0);
}

std::tuple<at::Tensor, at::Tensor> quantize_with_mask(const at::Tensor& t, const at::Tensor& amax,
                                                      const c10::IValue& args) {
  const auto list = args.toIntList();
  return ops::fake_tensor_quant_with_mask(t, amax, list[0], list[1] != 0, list[2] != 0);
}

// The quantized input (and, in backward, its mask) lives only during this node's convolution
// call: on the CPU it goes into buffers kept per thread and reused by every layer and step, so a
// step allocates no activation-sized tensors beyond the float graph's (glibc would otherwise map
// and page-fault fresh ones). The buffers keep the largest such input of the thread: see
// release_fused_quant_conv_buffers(). Not used while a graph is being recorded (create_graph).
struct Scratch {
  at::Tensor values, mask;
};
thread_local Scratch g_scratch;

at::Tensor scratch_view(at::Tensor* buffer, c10::IntArrayRef sizes, const at::TensorOptions& o) {
  const int64_t numel = c10::multiply_integers(sizes);
  if (!buffer->defined() || buffer->numel() < numel || buffer->dtype() != o.dtype()) {
    *buffer = at::Tensor();  // free the old one first
    *buffer = at::empty({numel}, o);
  }
  return buffer->narrow(0, 0, numel).view(sizes);
}

bool use_scratch(const at::Tensor& x) { return x.is_cpu() && !at::GradMode::is_enabled(); }

// fq(x) in the thread's scratch buffer (a CPU x), valid until the thread's next use of it.
at::Tensor quantize_into_scratch(const at::Tensor& x, const at::Tensor& amax,
                                 const c10::IValue& args) {
  at::Tensor out = scratch_view(&g_scratch.values, x.sizes(), x.options());
  const auto list = args.toIntList();
  ops::fake_tensor_quant_out(x, amax, list[0], list[1] != 0, list[2] != 0, out);
  return out;
}

at::Tensor quantize_input(const at::Tensor& x, const at::Tensor& amax, const c10::IValue& args) {
  return use_scratch(x) ? quantize_into_scratch(x, amax, args) : quantize(x, amax, args);
}

std::tuple<at::Tensor, at::Tensor> quantize_input_with_mask(const at::Tensor& x,
                                                            const at::Tensor& amax,
                                                            const c10::IValue& args) {
  if (!use_scratch(x)) return quantize_with_mask(x, amax, args);
  at::Tensor out = scratch_view(&g_scratch.values, x.sizes(), x.options());
  at::Tensor mask =
      scratch_view(&g_scratch.mask, {torchquant::detail::packed_mask_bytes(x.numel())},
                   x.options().dtype(at::kByte));
  const auto list = args.toIntList();
  ops::fake_tensor_quant_with_mask_out(x, amax, list[0], list[1] != 0, list[2] != 0, out, mask);
  return {out, mask};
}

std::vector<int64_t> pack(const Args& a) {
  return {a.num_bits, a.is_unsigned ? 1 : 0, a.narrow_range ? 1 : 0};
}

struct ConvGeometry {
  std::vector<int64_t> stride, padding, dilation, output_padding;
  bool transposed = false;
  int64_t groups = 1;
};

struct QuantConvFunction : public torch::autograd::Function<QuantConvFunction> {
  // bias is optional<Tensor>: autograd rejects an undefined Tensor among a Function's inputs.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const c10::optional<at::Tensor>& bias_opt, const Args& xa,
                            const Args& wa, const ConvGeometry& g) {
    const at::Tensor bias = bias_opt.value_or(at::Tensor());
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["x_args"] = c10::IValue(pack(xa));
    ctx->saved_data["w_args"] = c10::IValue(pack(wa));
    ctx->saved_data["stride"] = g.stride;
    ctx->saved_data["padding"] = g.padding;
    ctx->saved_data["dilation"] = g.dilation;
    ctx->saved_data["output_padding"] = g.output_padding;
    ctx->saved_data["transposed"] = g.transposed;
    ctx->saved_data["groups"] = g.groups;
    ctx->saved_data["bias_sizes"] = bias.defined() ? bias.sizes().vec() : std::vector<int64_t>{};
    ctx->saved_data["has_bias"] = bias.defined();
    ctx->save_for_backward({x, w, xa.amax, wa.amax});
    const at::Tensor xq = quantize_input(x, xa.amax, ctx->saved_data["x_args"]);
    const at::Tensor wq = quantize(w, wa.amax, ctx->saved_data["w_args"]);
    return at::convolution(xq, wq, bias, g.stride, g.padding, g.dilation, g.transposed,
                           g.output_padding, g.groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &x_amax = saved[2], &w_amax = saved[3];
    auto& data = ctx->saved_data;
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_w = ctx->needs_input_grad(1);
    // Edges exist for the tensor inputs only: no bias, no third edge.
    const bool need_b = data["has_bias"].toBool() && ctx->needs_input_grad(2);
    at::Tensor xq, x_mask, wq, w_mask;
    if (need_x) {
      std::tie(xq, x_mask) = quantize_input_with_mask(x, x_amax, data["x_args"]);
    } else {
      xq = quantize_input(x, x_amax, data["x_args"]);
    }
    if (need_w) {
      std::tie(wq, w_mask) = quantize_with_mask(w, w_amax, data["w_args"]);
    } else {
      wq = quantize(w, w_amax, data["w_args"]);
    }
    const std::vector<int64_t> bias_sizes = data["bias_sizes"].toIntVector();
    const auto stride = data["stride"].toIntVector();
    const auto padding = data["padding"].toIntVector();
    const auto dilation = data["dilation"].toIntVector();
    const auto output_padding = data["output_padding"].toIntVector();
    auto [gx, gw, gb] = at::convolution_backward(
        grads[0], xq, wq,
        data["has_bias"].toBool() ? c10::optional<at::IntArrayRef>(bias_sizes) : c10::nullopt,
        stride, padding, dilation, data["transposed"].toBool(), output_padding,
        data["groups"].toInt(), {need_x, need_w, need_b});
    // gx and gw are fresh tensors of this call: masked in place unless a graph is being built
    // through them (create_graph), which needs the out-of-place op.
    auto ste = [](at::Tensor& g, const at::Tensor& mask) {
      g = g.requires_grad() ? ops::ste_backward(g, mask) : ops::ste_backward_(g, mask);
    };
    if (need_x) ste(gx, x_mask);
    if (need_w) ste(gw, w_mask);
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void set_fused_quant_conv(bool enabled) { g_fused = enabled; }
void release_fused_quant_conv_buffers() { g_scratch = Scratch(); }
bool fused_quant_conv() { return g_fused; }

namespace detail {

template <size_t D>
c10::optional<at::Tensor> fused_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                                             const at::Tensor& bias,
                                             const torch::nn::ConvOptions<D>& o,
                                             const TensorQuantizerImpl& input_quantizer,
                                             const TensorQuantizerImpl& weight_quantizer) {
  if (!g_fused || !quant_modules::is_active()) return c10::nullopt;
  const bool inference =
      !(torchquant::detail::needs_grad(input) || torchquant::detail::needs_grad(weight) ||
        (bias.defined() && torchquant::detail::needs_grad(bias)));
  // Inference on another device: the unfused path, which saves nothing either.
  if (inference && !input.is_cpu()) return c10::nullopt;
  if (!std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode())) return c10::nullopt;
  const auto* padding = std::get_if<torch::ExpandingArray<D>>(&o.padding());
  if (padding == nullptr) return c10::nullopt;  // 'same' / 'valid'
  auto xa = input_quantizer.plain_fake_quant_args(input);
  if (!xa) return c10::nullopt;
  auto wa = weight_quantizer.plain_fake_quant_args(weight);
  if (!wa) return c10::nullopt;
  xa->amax = xa->amax.detach();
  wa->amax = wa->amax.detach();
  ConvGeometry g{at::IntArrayRef(o.stride()).vec(),
                 at::IntArrayRef(*padding).vec(),
                 at::IntArrayRef(o.dilation()).vec(),
                 std::vector<int64_t>(D, 0),
                 false,
                 o.groups()};
  if (inference) {
    // No graph refers to fq(x): it goes into the thread's buffer like the training path's, and
    // an eval forward maps no activation-sized tensor beyond the float model's.
    const at::Tensor xq = quantize_into_scratch(input, xa->amax, c10::IValue(pack(*xa)));
    const at::Tensor wq = quantize(weight, wa->amax, c10::IValue(pack(*wa)));
    return at::convolution(xq, wq, bias, g.stride, g.padding, g.dilation, g.transposed,
                           g.output_padding, g.groups);
  }
  return QuantConvFunction::apply(
      input, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt, *xa, *wa, g);
}

#define TORCHQUANT_INSTANTIATE_FUSED_CONV(D)                                                     \
  template c10::optional<at::Tensor> fused_conv_forward<D>(                                      \
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const torch::nn::ConvOptions<D>&, \
      const TensorQuantizerImpl&, const TensorQuantizerImpl&);
TORCHQUANT_INSTANTIATE_FUSED_CONV(1)
TORCHQUANT_INSTANTIATE_FUSED_CONV(2)
TORCHQUANT_INSTANTIATE_FUSED_CONV(3)
#undef TORCHQUANT_INSTANTIATE_FUSED_CONV

}  // namespace detail
}  // namespace nn
}  // namespace torchquant
