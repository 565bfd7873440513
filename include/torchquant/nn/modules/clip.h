#pragma once
/// \file
/// Clip: clamps a tensor to [clip_value_min, clip_value_max] with optionally learnable bounds
/// (PACT-style gradients), as `pytorch_quantization.nn.Clip`.

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <iosfwd>

namespace torchquant {
namespace nn {

namespace functional {
/// `min(max(x, clip_value_min), clip_value_max)` with strict straight-through gradients:
/// grad_x = g where clip_value_min < x < clip_value_max (strictly), 0 elsewhere;
/// grad_min = sum(g where x <= clip_value_min); grad_max = sum(g where x >= clip_value_max).
/// The bounds are 0-d tensors (learnable when they require grad).
///
/// \code
///   auto lo = torch::tensor(-1.f, torch::requires_grad());
///   auto hi = torch::tensor(1.f, torch::requires_grad());
///   at::Tensor y = torchquant::nn::functional::clip(x, lo, hi);
/// \endcode
at::Tensor clip(const at::Tensor& x, const at::Tensor& clip_value_min,
                const at::Tensor& clip_value_max);
}  // namespace functional

/// Options of Clip.
struct ClipOptions {
  ClipOptions(double clip_value_min, double clip_value_max)
      : clip_value_min_(clip_value_min), clip_value_max_(clip_value_max) {}
  TORCH_ARG(double, clip_value_min);
  TORCH_ARG(double, clip_value_max);
  /// Register clip_value_min as a learnable parameter.
  TORCH_ARG(bool, learn_min) = false;
  /// Register clip_value_max as a learnable parameter.
  TORCH_ARG(bool, learn_max) = false;
};

/// Clamps its input; learnable bounds are parameters named `clip_value_min` / `clip_value_max`
/// (upstream's state names). Fixed bounds are plain values, not state.
///
/// \code
///   torchquant::nn::Clip clip(torchquant::nn::ClipOptions(-1, 1).learn_min(true).learn_max(true));
///   at::Tensor y = clip(torch::randn({4}));
/// \endcode
class ClipImpl : public torch::nn::Cloneable<ClipImpl> {
 public:
  ClipImpl(double clip_value_min, double clip_value_max)
      : ClipImpl(ClipOptions(clip_value_min, clip_value_max)) {}
  explicit ClipImpl(ClipOptions options);

  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  ClipOptions options;
  /// 0-d float32 bounds (parameters when learned).
  at::Tensor clip_value_min;
  at::Tensor clip_value_max;
};
TORCH_MODULE(Clip);

}  // namespace nn
}  // namespace torchquant
