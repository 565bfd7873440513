// The straight-through backward written into the gradient: the packed-mask kernel that zeroes only
// the cleared bits' elements, and autograd handing fake_tensor_quant's node a gradient that nobody
// else holds (written in place) or one that someone does (left as it was).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/mask_bits.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::bit_equal;

at::Tensor packed(const at::Tensor& mask) {
  at::Tensor bits = torch::empty({detail::packed_mask_bytes(mask.numel())}, torch::kByte);
  detail::pack_mask_bits(mask.data_ptr<bool>(), mask.numel(), bits.data_ptr<uint8_t>());
  return bits;
}

// Every length around the 64-element words and the kernel's blocks, masks from all set to all
// clear: the in-place result has the out-of-place bits, and a set bit's element keeps its own
// bits (a NaN's payload, -0).
TEST(SteBackward, PackedMaskInPlaceEqualsOutOfPlace) {
  torch::manual_seed(21);
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n <= 200; ++n) lengths.push_back(n);
  for (int64_t n :
       {int64_t{4095}, int64_t{4096}, int64_t{4097}, int64_t{70000}, (int64_t{1} << 20) + 13})
    lengths.push_back(n);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (int64_t n : lengths) {
      for (double cleared : {0.0, 0.001, 0.5, 1.0}) {
        if (n > 4097 && (dtype != at::kFloat || cleared == 0.5)) continue;  // the long ones once
        const at::Tensor grad = testing::gradient_with_specials(n, dtype);
        const at::Tensor mask = torch::rand({n}).ge(cleared);
        const at::Tensor bits = packed(mask);
        const at::Tensor expected = ops::ste_backward(grad, bits);
        ASSERT_TRUE(bit_equal(expected, torch::where(mask, grad, torch::zeros_like(grad))));
        at::Tensor in_place = grad.clone();
        const at::Tensor& result = ops::ste_backward_(in_place, bits);
        ASSERT_TRUE(result.is_same(in_place));
        ASSERT_TRUE(bit_equal(in_place, expected)) << dtype << " n=" << n << " cleared=" << cleared;
      }
    }
  }
}

// The chain (y * 3).sum(): MulBackward makes a gradient for y that only autograd holds, so the
// node writes the masked gradient into it and x.grad is that same memory (AccumulateGrad steals
// it in turn). Every dtype, per tensor and per channel.
TEST(SteBackward, WritesIntoAGradientHandedOver) {
  torch::manual_seed(22);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (bool per_channel : {false, true}) {
      const at::Tensor amax =
          per_channel ? torch::tensor({0.5f, 1.0f, 1.5f}).reshape({3, 1}) : torch::tensor(1.5f);
      const at::Tensor x = (torch::randn({3, 500}) * 1.2).to(dtype).requires_grad_(true);
      const at::Tensor y = fake_tensor_quant(x, amax);
      const void* handed = nullptr;
      y.register_hook([&](const at::Tensor& g) { handed = g.data_ptr(); });
      (y * 3).sum().backward();
      const at::Tensor expected =
          torch::where(x.detach().to(at::kFloat).abs() <= amax, 3.0f, 0.0f).to(dtype);
      EXPECT_TRUE(torch::equal(x.grad(), expected)) << dtype << " per_channel=" << per_channel;
      EXPECT_EQ(x.grad().data_ptr(), handed) << "a new tensor was allocated for the gradient";
    }
  }
}

at::Tensor clipped_grad(const at::Tensor& x, const at::Tensor& g, float amax) {
  return torch::where(x.detach().abs() <= amax, g, torch::zeros_like(g));
}

// Gradients that someone else holds keep their values: the one passed to backward(), one a hook
// kept, one retained on the output, one a hook kept through a view (shared memory, another
// tensor), and the gradients while create_graph records the backward.
TEST(SteBackward, LeavesAGradientOthersHold) {
  const at::Tensor x = torch::tensor({-3.f, 0.5f, 2.f, -0.25f}).requires_grad_(true);
  const at::Tensor g = torch::tensor({5.f, 6.f, 7.f, 8.f});
  const at::Tensor amax = torch::tensor(1.f);
  const auto fresh_x = [&] { x.mutable_grad().reset(); };

  fake_tensor_quant(x, amax).backward(g);
  EXPECT_TRUE(torch::equal(g, torch::tensor({5.f, 6.f, 7.f, 8.f})));
  EXPECT_TRUE(torch::equal(x.grad(), clipped_grad(x, g, 1.f)));

  fresh_x();
  at::Tensor kept;
  {
    const at::Tensor y = fake_tensor_quant(x, amax);
    y.register_hook([&](const at::Tensor& grad) { kept = grad; });
    (y * 2).backward(g);
  }
  EXPECT_TRUE(torch::equal(kept, g * 2)) << "a gradient a hook kept was overwritten";
  EXPECT_TRUE(torch::equal(x.grad(), clipped_grad(x, g * 2, 1.f)));

  fresh_x();
  const at::Tensor retained = fake_tensor_quant(x, amax);
  retained.retain_grad();
  (retained * 2).backward(g);
  EXPECT_TRUE(torch::equal(retained.grad(), g * 2));
  EXPECT_TRUE(torch::equal(x.grad(), clipped_grad(x, g * 2, 1.f)));

  fresh_x();
  at::Tensor kept_view;
  {
    const at::Tensor flat = fake_tensor_quant(x, amax).view({2, 2});
    flat.register_hook([&](const at::Tensor& grad) { kept_view = grad; });
    (flat * 2).backward(g.view({2, 2}));
  }
  EXPECT_TRUE(torch::equal(kept_view, g.view({2, 2}) * 2))
      << "a gradient sharing memory with a kept one was overwritten";
  EXPECT_TRUE(torch::equal(x.grad(), clipped_grad(x, g * 2, 1.f)));

  const at::Tensor y = fake_tensor_quant(x, amax);
  const auto grads = torch::autograd::grad({(y * 2).sum()}, {x}, {}, /*retain_graph=*/true,
                                           /*create_graph=*/true);
  EXPECT_TRUE(torch::equal(grads[0], clipped_grad(x, torch::full({4}, 2.f), 1.f)));
}

}  // namespace
}  // namespace torchquant
