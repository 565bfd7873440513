// Quickstart: fake-quantize a tensor per tensor and per channel, look at the error, and train
// through the quantizer with the straight-through estimator.

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <torchquant/tensor_quant.h>

#include <cstdio>

int main() {
  at::manual_seed(0);
  const at::Tensor w = at::randn({16, 8, 3, 3});  // conv weights, KCRS

  // Per tensor: one amax.
  const at::Tensor fq_tensor = torchquant::fake_tensor_quant(w, w.abs().max());
  // Per output channel (axis 0), as QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL does.
  const at::Tensor amax = w.abs().amax({1, 2, 3}, /*keepdim=*/true);
  const at::Tensor fq_channel = torchquant::fake_tensor_quant(w, amax);
  auto [q, scale] = torchquant::tensor_quant(w, amax);

  std::printf("int8 per tensor : mean |error| %.6f\n", (fq_tensor - w).abs().mean().item<double>());
  std::printf("int8 per channel: mean |error| %.6f\n",
              (fq_channel - w).abs().mean().item<double>());
  std::printf("integers in [%g, %g], scale of channel 0 = %.4f\n", q.min().item<double>(),
              q.max().item<double>(), scale.reshape({-1})[0].item<double>());

  // A few steps of gradient descent through the quantizer (straight-through gradients).
  at::Tensor x = at::randn({256});
  const at::Tensor target = at::randn({256}).clamp(-1, 1);
  for (int step = 0; step <= 50; ++step) {
    x.requires_grad_(true);
    const at::Tensor loss =
        (torchquant::fake_tensor_quant(x, at::scalar_tensor(1.0), 4) - target).pow(2).mean();
    loss.backward();
    if (step % 10 == 0) std::printf("step %2d  4-bit loss %.5f\n", step, loss.item<double>());
    x = (x - 0.5 * x.grad()).detach();
  }
  return 0;
}
