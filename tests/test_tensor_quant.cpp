// tensor_quant / fake_tensor_quant / fake_affine_tensor_quant: documented values, properties,
// dtypes and layouts, determinism, variants (out, in-place), gradients and every error message.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ops/cpu/mask_bits.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::aten_fake_quant_recipe;
using testing::expect_error;
using testing::with_threads;

TEST(TensorQuant, DocumentationExample) {
  torch::manual_seed(12345);
  const at::Tensor x = torch::rand({10});
  const at::Tensor amax = x.abs().max();
  const at::Tensor fake = fake_tensor_quant(x, amax);
  const auto expected_fake = torch::tensor(
      {0.9843, 0.8828, 0.9921, 0.4609, 0.0859, 0.1797, 0.3672, 0.5703, 0.3359, 0.2109});
  EXPECT_TRUE(torch::allclose(fake, expected_fake, 0, 1e-4));
  auto [q, scale] = tensor_quant(x, amax);
  EXPECT_TRUE(
      torch::equal(q, torch::tensor({126., 113., 127., 59., 11., 23., 47., 73., 43., 27.})));
  EXPECT_NEAR(scale.item<double>(), 128.0057, 1e-4);
}

TEST(TensorQuant, RoundsHalfToEvenAndKeepsNegativeZero) {
  const at::Tensor x = torch::tensor({0.5f, 1.5f, 2.5f, -2.5f, -0.5f, -0.2f, 3.5f});
  auto [q, scale] = tensor_quant(x, torch::tensor(127.0f));  // scale exactly 1
  EXPECT_TRUE(torch::equal(q, torch::tensor({0.f, 2.f, 2.f, -2.f, -0.f, -0.f, 4.f})));
  EXPECT_TRUE(std::signbit(q[4].item<float>()));
  EXPECT_TRUE(std::signbit(q[5].item<float>()));
}

TEST(TensorQuant, ErrorBoundAndIdempotence) {
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({8, 16, 9, 7}) * 3;
  for (int64_t bits : {2, 4, 8, 12, 16}) {
    for (bool narrow : {true, false}) {
      for (const at::Tensor& amax : {torch::tensor(2.5f), x.abs().amax({0, 2, 3}, true) * 0.8}) {
        const at::Tensor fq = fake_tensor_quant(x, amax, bits, false, narrow);
        const double max_bound = std::ldexp(1.0, bits - 1) - 1;
        const at::Tensor step = amax / max_bound;
        const at::Tensor lowest = narrow ? -amax : -amax - step;  // full range has one more level
        const at::Tensor err = (fq - torch::max(torch::min(x, amax), lowest)).abs();
        // step/2 plus float32 rounding of q / scale (relevant at 16 bits)
        EXPECT_TRUE(err.le(step / 2 + amax * 1e-6).all().item<bool>()) << bits << " bits";
        EXPECT_TRUE(torch::equal(fake_tensor_quant(fq, amax, bits, false, narrow), fq)) << bits;
      }
    }
  }
}

TEST(TensorQuant, MatchesAtenRecipeOnEveryLayoutPath) {
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({4, 6, 5, 70});
  const std::vector<at::Tensor> amaxes = {
      torch::tensor(1.7f),                      // per tensor, 0-d
      torch::full({1}, 1.3f),                   // per tensor, one element of lower rank
      x.abs().amax({1, 2, 3}, true),            // per channel, rows path (inner 350)
      x.abs().amax({0, 2, 3}, true),            // per channel axis 1
      x.abs().amax({0, 1, 2}, true),            // per channel, last dim (periodic path)
      x.abs().amax({0, 1, 3}, true),            // per channel, short rows (inner 70)
      x.abs().amax({1, 3}, true),               // two non-unit dims: general path
      x.abs().amax({3}, false).unsqueeze(-1)};  // general path, lower-rank amax [4,6,5,1]
  for (const auto& amax : amaxes) {
    for (bool uns : {false, true}) {
      const at::Tensor in = uns ? x.abs() : x;
      const at::Tensor expected = aten_fake_quant_recipe(in, amax, 8, uns, true);
      EXPECT_TRUE(torch::equal(fake_tensor_quant(in, amax, 8, uns, true), expected))
          << "amax shape " << amax.sizes() << " unsigned " << uns;
    }
  }
}

TEST(TensorQuant, PerChannelEqualsPerTensorOnEachChannel) {
  torch::manual_seed(2);
  const at::Tensor x = torch::randn({3, 5, 4});
  const at::Tensor amax = x.abs().amax({0, 2}, true) * 0.9;
  const at::Tensor fq = fake_tensor_quant(x, amax, 6);
  for (int64_t c = 0; c < 5; ++c) {
    const at::Tensor slice = x.select(1, c);
    EXPECT_TRUE(torch::equal(fq.select(1, c), fake_tensor_quant(slice, amax.reshape({-1})[c], 6)));
  }
}

TEST(TensorQuant, ZeroAmaxChannelGivesZerosAndScaleOne) {
  const at::Tensor x = torch::randn({3, 4});
  const at::Tensor amax = torch::tensor({{1.0f}, {0.0f}, {1e-9f}});
  auto [q, scale] = tensor_quant(x, amax);
  EXPECT_TRUE(q.slice(0, 1).eq(0).all().item<bool>());
  EXPECT_TRUE(torch::equal(scale, torch::tensor({{127.0f}, {1.0f}, {1.0f}})));
  EXPECT_TRUE(fake_tensor_quant(x, amax).slice(0, 1).eq(0).all().item<bool>());
}

TEST(TensorQuant, DtypesAgreeWithFloat32) {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({64, 33});
  const at::Tensor amax = torch::tensor(2.0f);
  const at::Tensor ref = fake_tensor_quant(x, amax);
  // bfloat16: computed in fp32 and rounded once.
  const at::Tensor xb = x.to(at::kBFloat16);
  EXPECT_TRUE(torch::equal(fake_tensor_quant(xb, amax),
                           fake_tensor_quant(xb.to(at::kFloat), amax).to(at::kBFloat16)));
  // float16: upstream divides in fp16 (q.half() / scale.half()): at most one fp16 ulp away.
  const at::Tensor xh = x.to(at::kHalf);
  const at::Tensor fh = fake_tensor_quant(xh, amax);
  EXPECT_EQ(fh.scalar_type(), at::kHalf);
  EXPECT_TRUE(torch::allclose(fh.to(at::kFloat), fake_tensor_quant(xh.to(at::kFloat), amax), 0,
                              1.0 / 1024));
  // float64: same quantized integers.
  const at::Tensor fd = fake_tensor_quant(x.to(at::kDouble), amax);
  EXPECT_EQ(fd.scalar_type(), at::kDouble);
  auto [qd, sd] = tensor_quant(x.to(at::kDouble), amax);
  auto [qf, sf] = tensor_quant(x, amax);
  EXPECT_TRUE(torch::equal(qd.to(at::kFloat), qf));
  EXPECT_EQ(sd.scalar_type(), at::kDouble);
  EXPECT_TRUE(torch::allclose(fd.to(at::kFloat), ref, 0, 1e-6));
}

TEST(TensorQuant, NonContiguousAndChannelsLastInputs) {
  torch::manual_seed(4);
  const at::Tensor x = torch::randn({2, 8, 5, 6});
  const at::Tensor amax = x.abs().amax({0, 2, 3}, true);
  const at::Tensor ref = fake_tensor_quant(x, amax);
  const at::Tensor cl = x.contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(torch::equal(fake_tensor_quant(cl, amax), ref));
  const at::Tensor t = x.transpose(2, 3).contiguous().transpose(2, 3);  // same values, strided
  ASSERT_FALSE(t.is_contiguous());
  EXPECT_TRUE(torch::equal(fake_tensor_quant(t, amax), ref));
}

TEST(TensorQuant, EmptyInputs) {
  const at::Tensor x = torch::empty({0, 3}).requires_grad_(true);
  const at::Tensor y = fake_tensor_quant(x, torch::tensor(1.0f));
  EXPECT_EQ(y.sizes(), x.sizes());
  y.sum().backward();
  EXPECT_EQ(x.grad().sizes(), x.sizes());
  auto [q, scale] = tensor_quant(torch::empty({0}), torch::tensor(2.0f));
  EXPECT_EQ(q.numel(), 0);
  EXPECT_FLOAT_EQ(scale.item<float>(), 63.5f);
}

TEST(TensorQuant, OneAndTwoThreadsBitIdentical) {
  torch::manual_seed(5);
  const at::Tensor x = torch::randn({64, 32, 33, 17});
  for (const at::Tensor& amax :
       {torch::tensor(2.0f), x.abs().amax({0, 2, 3}, true), x.abs().amax({0, 1, 2}, true)}) {
    const at::Tensor one = with_threads(1, [&] { return fake_tensor_quant(x, amax); });
    const at::Tensor two = with_threads(2, [&] { return fake_tensor_quant(x, amax); });
    EXPECT_TRUE(torch::equal(one, two));
    EXPECT_TRUE(torch::equal(one, fake_tensor_quant(x, amax)));  // run to run
  }
}

TEST(TensorQuant, OutAndInPlaceVariantsMatch) {
  torch::manual_seed(6);
  const at::Tensor x = torch::randn({7, 9});
  const at::Tensor amax = torch::tensor(1.5f);
  const at::Tensor ref = fake_tensor_quant(x, amax, 5, false, false);
  at::Tensor out = torch::empty_like(x);
  EXPECT_TRUE(torch::equal(fake_tensor_quant_out(out, x, amax, 5, false, false), ref));
  EXPECT_TRUE(torch::equal(out, ref));
  at::Tensor strided_out = torch::empty({9, 7}).t();
  fake_tensor_quant_out(strided_out, x, amax, 5, false, false);
  EXPECT_TRUE(torch::equal(strided_out, ref));
  at::Tensor y = x.clone();
  const auto version = y._version();
  fake_tensor_quant_(y, amax, 5, false, false);
  EXPECT_TRUE(torch::equal(y, ref));
  EXPECT_GT(y._version(), version);
}

TEST(TensorQuant, InPlaceUnsignedErrorLeavesInputUnchanged) {
  at::Tensor x = torch::tensor({0.5f, -0.25f, 1.0f});
  const at::Tensor before = x.clone();
  expect_error([&] { fake_tensor_quant_(x, torch::tensor(1.0f), 8, true); },
               {"torchquant::fake_tensor_quant_", "negative values", "unsigned=true"});
  EXPECT_TRUE(torch::equal(x, before));
  at::Tensor view_out = x.view({3});  // another tensor over the same memory
  expect_error([&] { fake_tensor_quant_out(view_out, x, torch::tensor(1.0f), 8, true); },
               {"negative values"});
  EXPECT_TRUE(torch::equal(x, before));
}

TEST(TensorQuant, StraightThroughGradient) {
  const at::Tensor x =
      torch::tensor({-3.0f, -2.0f, -0.5f, 0.0f, 1.9f, 2.0f, 2.1f, NAN}).requires_grad_(true);
  const at::Tensor amax = torch::tensor(2.0f).requires_grad_(true);
  fake_tensor_quant(x, amax).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.f, 1.f, 1.f, 1.f, 1.f, 1.f, 0.f, 0.f})));
  EXPECT_FALSE(amax.grad().defined());  // no gradient for amax, as upstream
  const at::Tensor x2 = torch::tensor({-3.0f, 1.0f}).requires_grad_(true);
  auto [q, scale] = tensor_quant(x2, torch::tensor(2.0f));
  EXPECT_FALSE(scale.requires_grad());
  (q * torch::tensor({5.0f, 7.0f})).sum().backward();
  EXPECT_TRUE(torch::equal(x2.grad(), torch::tensor({0.f, 7.f})));
}

TEST(TensorQuant, BackwardDoesNotKeepTheInputAlive) {
  const at::Tensor x = torch::randn({256, 256}).requires_grad_(true);
  at::Tensor tmp = x * 2;  // MulBackward with a scalar saves nothing of tmp
  const c10::weak_intrusive_ptr<c10::TensorImpl> weak(tmp.getIntrusivePtr());
  at::Tensor y = fake_tensor_quant(tmp, torch::tensor(1.0f));
  tmp.reset();
  EXPECT_TRUE(weak.expired()) << "the autograd graph holds the quantizer's input";
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), (x * 2).abs().le(1.0).to(at::kFloat) * 2));
}

// The in-place backward (used on gradients autograd hands to QuantConv's fused node) gives the
// out-of-place bits, for every dtype and for a non-contiguous gradient, written into the gradient.
TEST(TensorQuant, InPlaceSteBackwardEqualsOutOfPlace) {
  torch::manual_seed(3);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (bool contiguous : {true, false}) {
      at::Tensor grad = torch::randn({70, 33}).to(dtype);
      if (!contiguous) grad = grad.t();
      const at::Tensor mask = torch::rand(grad.sizes()).gt(0.3);
      const at::Tensor expected = ops::ste_backward(grad, mask);
      EXPECT_TRUE(torch::equal(expected, torch::where(mask, grad, torch::zeros_like(grad))));
      at::Tensor in_place = grad.clone();
      at::Tensor& result = ops::ste_backward_(in_place, mask);
      EXPECT_TRUE(result.is_same(in_place));
      EXPECT_TRUE(torch::equal(in_place, expected)) << dtype << " contiguous=" << contiguous;
    }
  }
  at::Tensor wrong = torch::ones({3});
  expect_error(
      [&] { ops::ste_backward_(wrong, torch::ones({4}, at::kBool)); },
      {"torchquant::_ste_backward_: grad of shape [3] does not match the mask of shape [4]"});
  EXPECT_TRUE(torch::equal(wrong, torch::ones({3}))) << "a refused call leaves the gradient";
}

TEST(TensorQuant, PackedMaskBitsRoundTrip) {
  torch::manual_seed(5);
  for (int64_t n : {0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 4095, 4096, 4097, 10000}) {
    const at::Tensor mask = torch::rand({n}).gt(0.5);
    at::Tensor bits = torch::full({detail::packed_mask_bytes(n)}, 0xAA, torch::kByte);
    detail::pack_mask_bits(mask.data_ptr<bool>(), n, bits.data_ptr<uint8_t>());
    for (int64_t i = 0; i < n; i += 37) {
      ASSERT_EQ((bits[i / 8].item<int>() >> (i % 8)) & 1, mask[i].item<bool>()) << n << " " << i;
    }
    if (n % 8 != 0) {
      EXPECT_EQ(bits[-1].item<int>() >> (n % 8), 0) << "unused bits are 0";
    }
    at::Tensor back = torch::ones({n}, torch::kBool);
    detail::unpack_mask_bits(bits.data_ptr<uint8_t>(), n, back.data_ptr<bool>());
    EXPECT_TRUE(torch::equal(back, mask)) << n;
  }
}

// The CPU forward saves its straight-through mask as packed bits; the gradient must be
// grad where |x| <= amax on every layout path (per tensor, periodic per channel, per-channel rows,
// general), for sizes that end mid-byte and mid-block, with 1 and 2 threads.
TEST(TensorQuant, PackedMaskGradientsOnEveryLayout) {
  torch::manual_seed(6);
  struct Case {
    std::vector<int64_t> shape, amax_shape;
  };
  const std::vector<Case> cases = {{{4099}, {}},
                                   {{3, 70, 5}, {1, 70, 1}},
                                   {{2, 3, 1001}, {1, 3, 1}},
                                   {{5, 13}, {5, 13}},
                                   {{9, 8200}, {9, 1}}};
  for (const Case& c : cases) {
    const at::Tensor x0 = torch::randn(c.shape) * 2;
    const at::Tensor amax = torch::rand(c.amax_shape) + 0.5;
    const at::Tensor g = torch::randn(c.shape);
    const at::Tensor expected = torch::where(x0.abs() <= amax, g, torch::zeros_like(g));
    auto [out, mask] = ops::fake_tensor_quant_with_mask(x0, amax, 8, false, true);
    EXPECT_EQ(mask.scalar_type(), torch::kByte);
    EXPECT_EQ(mask.numel(), (x0.numel() + 7) / 8);
    for (int threads : {1, 2}) {
      const at::Tensor grad = with_threads(threads, [&] {
        const at::Tensor x = x0.clone().requires_grad_(true);
        fake_tensor_quant(x, amax).backward(g);
        return x.grad();
      });
      EXPECT_TRUE(torch::equal(grad, expected)) << c.shape << " threads " << threads;
    }
  }
  at::Tensor grad = torch::ones({20});
  expect_error(
      [&] { ops::ste_backward(grad, torch::zeros({2}, torch::kByte)); },
      {"torchquant::_ste_backward: a packed mask for grad of shape [20] must hold 3 bytes, "
       "got shape [2]"});
}

TEST(TensorQuant, NoMaskWithoutGrad) {
  const at::Tensor x = torch::randn({10}).requires_grad_(true);
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(fake_tensor_quant(x, torch::tensor(1.0f)).requires_grad());
}

TEST(TensorQuant, ErrorMessages) {
  const at::Tensor x = torch::randn({2, 3});
  const at::Tensor amax = torch::tensor(1.0f);
  expect_error([&] { fake_tensor_quant(x, torch::tensor(-1.0f)); },
               {"torchquant::fake_tensor_quant", "amax must be non-negative", "-1"});
  expect_error([&] { fake_tensor_quant(x, torch::tensor(NAN)); },
               {"torchquant::fake_tensor_quant", "amax contains NaN"});
  expect_error([&] { fake_tensor_quant(x.abs() - 2, amax, 8, true); },
               {"torchquant::fake_tensor_quant", "negative values in inputs with unsigned=true"});
  expect_error(
      [&] {
        tensor_quant(x, torch::ones({3, 1}));
      },
      {"torchquant::tensor_quant", "amax of shape [3, 1] does not broadcast",
       "inputs of shape [2, 3]"});
  expect_error([&] { tensor_quant(x, torch::ones({1, 2, 3})); }, {"does not broadcast"});
  // The Meta kernels check devices too (a CUDA amax with CPU inputs takes the same path).
  expect_error([&] { tensor_quant(x, amax.to(at::kMeta)); },
               {"torchquant::tensor_quant", "amax is on meta", "same device"});
  expect_error([&] { fake_tensor_quant(x, torch::tensor(1)); },
               {"torchquant::fake_tensor_quant",
                "amax must be float32, float64, float16 or "
                "bfloat16, got Long"});
  expect_error([&] { fake_tensor_quant(torch::ones({3}, at::kInt), amax); },
               {"inputs must be float32, float64, float16 or bfloat16, got Int"});
  expect_error([&] { fake_tensor_quant(x, amax, 1); },
               {"num_bits must be in [2, 16] for signed quantization, got 1", "empty range"});
  expect_error([&] { fake_tensor_quant(x, amax, 17); }, {"num_bits must be in [2, 16]", "got 17"});
  expect_error([&] { fake_tensor_quant(x.abs(), amax, 0, true); },
               {"num_bits must be in [1, 16] for unsigned quantization, got 0"});
  expect_error([&] { tensor_quant(x.to(at::kHalf), torch::tensor(1e-3f)); },
               {"torchquant::tensor_quant", "overflows float16"});
  expect_error([&] { fake_tensor_quant(x, torch::empty({0})); }, {"amax is empty"});
  at::Tensor leaf = x.clone().requires_grad_(true);
  expect_error([&] { fake_tensor_quant_(leaf, amax); },
               {"torchquant::fake_tensor_quant_", "no gradient", "NoGradGuard"});
  at::Tensor wrong_out = torch::empty({3, 2});
  expect_error([&] { fake_tensor_quant_out(wrong_out, x, amax); },
               {"torchquant::fake_tensor_quant_out", "out has shape [3, 2]"});
}

TEST(FakeAffineTensorQuant, GradientRangeAndErrors) {
  const at::Tensor x = torch::tensor({-2.0f, -1.0f, 0.0f, 3.0f, 3.5f}).requires_grad_(true);
  at::Tensor y = fake_affine_tensor_quant(x, torch::tensor(-1.0f), torch::tensor(3.0f));
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.f, 1.f, 1.f, 1.f, 0.f})));
  EXPECT_NEAR(y[3].item<float>(), 3.0f, 4.0 / 255);  // within one step (zero point rounding)
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(2.0f), torch::tensor(1.0f)); },
               {"torchquant::fake_affine_tensor_quant", "min_range < max_range"});
  expect_error([&] { fake_affine_tensor_quant(x, torch::zeros({2}), torch::tensor(1.0f)); },
               {"min_range must hold one value"});
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(0.f), torch::tensor(1.0f), 1); },
               {"num_bits must be in [2, 16], got 1"});
}

}  // namespace
}  // namespace torchquant
