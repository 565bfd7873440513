// Autograd kernels: the straight-through estimator. Forward saves a mask (|x| <= amax, or
// min <= x <= max; packed bits from the CPU kernels, bools otherwise) instead of the input;
// backward is grad * mask, written into the gradient when autograd handed it over.

#include <ATen/Functions.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <functional>
#include <utility>
#include <vector>

#include "ops/quant_common.h"
#include "ops/quant_ops.h"

namespace torchquant {
namespace detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Whether nothing but the caller holds `grad` or its memory, and no graph is being recorded: then
/// writing the masked gradient into it cannot be seen by anyone. The tensor's rule is the one
/// AccumulateGrad steals gradients by (one use, or two where the second is a Python wrapper that
/// nothing else in Python references); its memory must have no other user either. True for a
/// gradient that the next layer's backward made for this node (a fresh convolution or matmul
/// gradient); false for one that a caller passed to backward(), that a hook kept or that the
/// engine keeps for the node's post hooks: those get a new tensor.
bool handed_over(const at::Tensor& grad) {
  return torch::autograd::impl::is_tensor_stealable(grad) && grad.has_storage() &&
         grad.storage().use_count() == 1 && !c10::GradMode::is_enabled() && !grad.requires_grad() &&
         !grad.is_inference() && grad.layout() == at::kStrided && grad.is_contiguous() &&
         !grad._is_zerotensor() && !grad.is_neg() && !grad.is_conj();
}

/// Outputs (the first one differentiable, the rest not) and the mask of one forward.
using MaskedForward = std::function<std::pair<variable_list, at::Tensor>()>;

struct SteFunction : public torch::autograd::Function<SteFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& inputs,
                               const MaskedForward& run) {
    (void)inputs;  // passed to apply() only so that autograd links the outputs to it
    at::AutoDispatchBelowADInplaceOrView guard;
    auto result = run();
    ctx->save_for_backward({result.second});
    if (result.first.size() > 1) {
      ctx->mark_non_differentiable(variable_list(result.first.begin() + 1, result.first.end()));
    }
    return result.first;
  }

  // `grads` by reference: autograd's CppNode passes its own list, which then holds the only
  // references to gradients handed to this node alone (a copy would double every use count).
  static variable_list backward(AutogradContext* ctx, variable_list& grads) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    at::Tensor grad = std::move(grads[0]);
    if (!grad.defined()) return {at::Tensor(), at::Tensor()};
    if (handed_over(grad)) return {ops::ste_backward_(grad, mask), at::Tensor()};
    return {ops::ste_backward(grad, mask), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> tensor_quant_autograd(const at::Tensor& x,
                                                         const at::Tensor& amax, int64_t nb,
                                                         bool uns, bool nr) {
  if (!needs_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return ops::tensor_quant(x, amax, nb, uns, nr);
  }
  auto outs = SteFunction::apply(x, MaskedForward([&] {
                                   auto [q, scale, mask] =
                                       ops::tensor_quant_with_mask(x, amax, nb, uns, nr);
                                   return std::make_pair(variable_list{q, scale}, mask);
                                 }));
  return {outs[0], outs[1]};
}

at::Tensor fake_tensor_quant_autograd(const at::Tensor& x, const at::Tensor& amax, int64_t nb,
                                      bool uns, bool nr) {
  if (!needs_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return ops::fake_tensor_quant(x, amax, nb, uns, nr);
  }
  return SteFunction::apply(x, MaskedForward([&] {
                              auto [out, mask] =
                                  ops::fake_tensor_quant_with_mask(x, amax, nb, uns, nr);
                              return std::make_pair(variable_list{out}, mask);
                            }))[0];
}

at::Tensor scaled_e4m3_autograd(const at::Tensor& x, const c10::optional<at::Tensor>& amax,
                                int64_t E, int64_t M) {
  if (!needs_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return ops::scaled_e4m3(x, amax, E, M);
  }
  return SteFunction::apply(x, MaskedForward([&] {
                              auto [out, mask] = ops::scaled_e4m3_with_mask(x, amax, E, M);
                              return std::make_pair(variable_list{out}, mask);
                            }))[0];
}

at::Tensor fake_affine_autograd(const at::Tensor& x, const at::Tensor& min_range,
                                const at::Tensor& max_range, int64_t nb) {
  if (!needs_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return ops::fake_affine_tensor_quant(x, min_range, max_range, nb);
  }
  return SteFunction::apply(x, MaskedForward([&] {
                              auto [out, mask] = ops::fake_affine_tensor_quant_with_mask(
                                  x, min_range, max_range, nb);
                              return std::make_pair(variable_list{out}, mask);
                            }))[0];
}

void check_no_grad(const char* fn, const at::Tensor& t) {
  TORCH_CHECK(!needs_grad(t), fn,
              ": this variant has no gradient but a tensor requires grad; "
              "call it under torch::NoGradGuard or use fake_tensor_quant");
}

at::Tensor& fake_tensor_quant_out_autograd(const at::Tensor& x, const at::Tensor& amax, int64_t nb,
                                           bool uns, bool nr, at::Tensor& out) {
  check_no_grad("torchquant::fake_tensor_quant_out", x);
  check_no_grad("torchquant::fake_tensor_quant_out", out);
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    ops::fake_tensor_quant_out(x, amax, nb, uns, nr, out);
  }
  out.unsafeGetTensorImpl()->bump_version();
  return out;
}

at::Tensor& fake_tensor_quant_inplace_autograd(at::Tensor& x, const at::Tensor& amax, int64_t nb,
                                               bool uns, bool nr) {
  check_no_grad("torchquant::fake_tensor_quant_", x);
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    ops::fake_tensor_quant_(x, amax, nb, uns, nr);
  }
  x.unsafeGetTensorImpl()->bump_version();
  return x;
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, Autograd, m) {
  using namespace torchquant::detail;
  m.impl("tensor_quant", &tensor_quant_autograd);
  m.impl("fake_tensor_quant", &fake_tensor_quant_autograd);
  m.impl("fake_tensor_quant.out", &fake_tensor_quant_out_autograd);
  m.impl("fake_tensor_quant_", &fake_tensor_quant_inplace_autograd);
  m.impl("scaled_e4m3", &scaled_e4m3_autograd);
  m.impl("fake_affine_tensor_quant", &fake_affine_autograd);
}
