#include "torchquant/nn/modules/clip.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <ostream>

namespace torchquant {
namespace nn {
namespace {

// Region codes saved for backward (one byte per element instead of the input).
constexpr uint8_t kInside = 0;
constexpr uint8_t kBelow = 1;  // x <= min
constexpr uint8_t kAbove = 2;  // x >= max

struct ClipFunction : public torch::autograd::Function<ClipFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& lo, const at::Tensor& hi) {
    at::Tensor lo_x = lo.to(x.dtype());
    at::Tensor hi_x = hi.to(x.dtype());
    at::Tensor region =
        at::where(x <= lo_x, kBelow, at::where(x >= hi_x, kAbove, kInside)).to(at::kByte);
    ctx->save_for_backward({region});
    ctx->saved_data["lo_dtype"] = static_cast<int64_t>(lo.scalar_type());
    ctx->saved_data["hi_dtype"] = static_cast<int64_t>(hi.scalar_type());
    return at::minimum(at::maximum(x, lo_x), hi_x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor region = ctx->get_saved_variables()[0];
    const at::Tensor& g = grads[0];
    const at::Tensor zero = at::zeros({}, g.options());
    at::Tensor grad_x = at::where(region == kInside, g, zero);
    const auto lo_dtype = static_cast<at::ScalarType>(ctx->saved_data["lo_dtype"].toInt());
    const auto hi_dtype = static_cast<at::ScalarType>(ctx->saved_data["hi_dtype"].toInt());
    at::Tensor grad_lo = at::where(region == kBelow, g, zero).sum().to(lo_dtype);
    at::Tensor grad_hi = at::where(region == kAbove, g, zero).sum().to(hi_dtype);
    return {grad_x, grad_lo, grad_hi};
  }
};

}  // namespace

namespace functional {
at::Tensor clip(const at::Tensor& x, const at::Tensor& clip_value_min,
                const at::Tensor& clip_value_max) {
  TORCH_CHECK_VALUE(clip_value_min.numel() == 1 && clip_value_max.numel() == 1,
                    "clip: clip_value_min and clip_value_max must be one-element tensors, got "
                    "shapes ",
                    clip_value_min.sizes(), " and ", clip_value_max.sizes());
  TORCH_CHECK_TYPE(x.is_floating_point(), "clip: expected a floating-point input, got ",
                   x.scalar_type());
  return ClipFunction::apply(x, clip_value_min.reshape({}), clip_value_max.reshape({}));
}
}  // namespace functional

ClipImpl::ClipImpl(ClipOptions options_) : options(std::move(options_)) { reset(); }

void ClipImpl::reset() {
  clip_value_min = at::scalar_tensor(options.clip_value_min(), at::kFloat);
  clip_value_max = at::scalar_tensor(options.clip_value_max(), at::kFloat);
  if (options.learn_min()) clip_value_min = register_parameter("clip_value_min", clip_value_min);
  if (options.learn_max()) clip_value_max = register_parameter("clip_value_max", clip_value_max);
}

at::Tensor ClipImpl::forward(const at::Tensor& x) {
  return functional::clip(x, clip_value_min.to(x.device()), clip_value_max.to(x.device()));
}

void ClipImpl::pretty_print(std::ostream& stream) const {
  stream << "torchquant::nn::Clip(min=" << clip_value_min.item<float>()
         << ", max=" << clip_value_max.item<float>() << ")";
}

}  // namespace nn
}  // namespace torchquant
