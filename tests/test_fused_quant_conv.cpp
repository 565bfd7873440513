// QuantConvNd's fused training path gives the outputs and gradients of the unfused graph bit for
// bit, and steps aside whenever a quantizer is not plain fake quantization.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "torchquant/nn/modules/quant_conv.h"

namespace torchquant {
namespace {

// Restores the process-wide switch.
struct FusedSwitch {
  bool before = nn::fused_quant_conv();
  ~FusedSwitch() { nn::set_fused_quant_conv(before); }
};

struct Grads {
  at::Tensor y, gx, gw, gb;
};

// One forward + backward with a fixed upstream gradient, fused or not.
template <typename Layer>
Grads run(Layer& layer, const at::Tensor& x0, bool fused, bool x_requires_grad = true) {
  FusedSwitch restore;
  nn::set_fused_quant_conv(fused);
  layer->zero_grad();
  at::Tensor x = x0.detach().clone().requires_grad_(x_requires_grad);
  at::Tensor y = layer->forward(x);
  torch::manual_seed(7);
  y.backward(torch::randn_like(y));
  return {y.detach(), x_requires_grad ? x.grad() : at::Tensor(), layer->weight.grad().clone(),
          layer->bias.defined() ? layer->bias.grad().clone() : at::Tensor()};
}

void expect_same(const Grads& a, const Grads& b, const std::string& what) {
  EXPECT_TRUE(a.y.equal(b.y)) << what << ": outputs differ";
  EXPECT_EQ(a.gx.defined(), b.gx.defined()) << what;
  if (a.gx.defined()) {
    EXPECT_TRUE(a.gx.equal(b.gx)) << what << ": input gradients differ";
  }
  EXPECT_TRUE(a.gw.equal(b.gw)) << what << ": weight gradients differ";
  EXPECT_EQ(a.gb.defined(), b.gb.defined()) << what;
  if (a.gb.defined()) {
    EXPECT_TRUE(a.gb.equal(b.gb)) << what << ": bias gradients differ";
  }
}

// A layer whose quantizers clip: fixed amax below the data's range, so masks are not all ones.
template <typename Layer>
void clip_amax(Layer& layer) {
  layer->_input_quantizer->set_amax(1.0);
  layer->_weight_quantizer->set_amax(layer->weight.detach().abs().amax({1, 2}, true).mul(0.7));
}

// The autograd node that produced the layer's output for `x`.
std::string grad_fn_name(nn::QuantConv2d& conv, const at::Tensor& x) {
  return conv(x.detach().requires_grad_(true)).grad_fn()->name();
}

TEST(FusedQuantConv, PlainQuantizersTakeTheFusedNode) {
  FusedSwitch restore;
  torch::manual_seed(5);
  nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const at::Tensor x = torch::randn({1, 3, 5, 5});
  EXPECT_NE(grad_fn_name(conv, x).find("QuantConvFunction"), std::string::npos)
      << grad_fn_name(conv, x);
  nn::set_fused_quant_conv(false);
  EXPECT_EQ(grad_fn_name(conv, x), "ConvolutionBackward0");
}

TEST(FusedQuantConv, Conv2dEqualsTheUnfusedGraphBitForBit) {
  torch::manual_seed(0);
  for (const bool bias : {true, false}) {
    for (const int64_t groups : {1, 2}) {
      nn::QuantConv2d conv(
          torch::nn::Conv2dOptions(4, 6, 3).stride(2).padding(1).dilation(1).groups(groups).bias(
              bias));
      const at::Tensor x = torch::randn({3, 4, 9, 9}) * 2;
      const std::string what = "bias " + std::to_string(bias) + " groups " + std::to_string(groups);
      expect_same(run(conv, x, true), run(conv, x, false), what + " (dynamic amax)");
      conv->_input_quantizer->set_amax(1.0);
      conv->_weight_quantizer->set_amax(conv->weight.detach().abs().amax({1, 2, 3}, true) * 0.7);
      const Grads fused = run(conv, x, true);
      expect_same(fused, run(conv, x, false), what + " (clipping amax)");
      // The masks matter: some input gradients are zeroed, others not.
      EXPECT_GT(fused.gx.eq(0).sum().item<int64_t>(), 0) << what;
      EXPECT_GT(fused.gx.ne(0).sum().item<int64_t>(), 0) << what;
    }
  }
}

// On the CPU every fused layer quantizes its input into one per-thread buffer: a stack whose
// inputs shrink and grow again (so the buffer is reused, then reallocated), run for two steps,
// must still give the unfused graph's outputs and gradients, also after the buffers are freed.
TEST(FusedQuantConv, LayersSharingTheQuantizedInputBufferMatchTheUnfusedGraph) {
  torch::manual_seed(4);
  nn::QuantConv2d a(torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1));
  nn::QuantConv2d b(torch::nn::Conv2dOptions(8, 4, 1));
  nn::QuantConv2d c(torch::nn::Conv2dOptions(4, 16, 3).padding(1));
  for (auto* layer : {&a, &b, &c}) clip_amax(*layer);
  auto step = [&](const at::Tensor& x0, const at::Tensor& big, bool fused) {
    FusedSwitch restore;
    nn::set_fused_quant_conv(fused);
    for (auto* layer : {&a, &b, &c}) (*layer)->zero_grad();
    const at::Tensor x = x0.detach().clone().requires_grad_(true);
    // c sees a larger input than a and b: the buffer grows in forward and in backward.
    const at::Tensor y = c(b(a(x))).sum() + c(big).mean();
    y.backward();
    return std::vector<at::Tensor>{y.detach(), x.grad(), a->weight.grad().clone(),
                                   b->weight.grad().clone(), c->weight.grad().clone()};
  };
  for (int s = 0; s < 2; ++s) {
    const at::Tensor x = torch::randn({2, 3, 12, 12}) * 2;
    const at::Tensor big = torch::randn({3, 4, 20, 20}) * 2;
    const auto fused = step(x, big, true);
    const auto plain = step(x, big, false);
    for (size_t i = 0; i < fused.size(); ++i) {
      EXPECT_TRUE(fused[i].equal(plain[i])) << "step " << s << ", tensor " << i;
    }
    nn::release_fused_quant_conv_buffers();
  }
}

TEST(FusedQuantConv, Conv1dAndConv3dAndAnInputWithoutGradient) {
  torch::manual_seed(1);
  nn::QuantConv1d c1(torch::nn::Conv1dOptions(3, 5, 3).padding(2).dilation(2));
  clip_amax(c1);
  const at::Tensor x1 = torch::randn({2, 3, 17}) * 2;
  expect_same(run(c1, x1, true), run(c1, x1, false), "conv1d");
  expect_same(run(c1, x1, true, false), run(c1, x1, false, false), "conv1d, x without grad");

  nn::QuantConv3d c3(torch::nn::Conv3dOptions(2, 3, 3).stride({1, 2, 1}).padding(1));
  c3->_input_quantizer->set_amax(1.0);
  c3->_weight_quantizer->set_amax(c3->weight.detach().abs().amax({1, 2, 3, 4}, true) * 0.8);
  const at::Tensor x3 = torch::randn({2, 2, 5, 6, 4}) * 2;
  expect_same(run(c3, x3, true), run(c3, x3, false), "conv3d");
}

TEST(FusedQuantConv, UnsignedAndNarrowRangeAndFourBits) {
  torch::manual_seed(2);
  nn::QuantConv2d conv(
      torch::nn::Conv2dOptions(3, 4, 3).padding(1),
      nn::QuantLayerOptions()
          .quant_desc_input(QuantDescriptor().num_bits(4).is_unsigned(true).amax(1.5))
          .quant_desc_weight(QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL().narrow_range(false)));
  const at::Tensor x = torch::rand({2, 3, 6, 6}) * 2;
  expect_same(run(conv, x, true), run(conv, x, false), "unsigned 4-bit input");
}

// Whatever the layer does differently from plain fake quantization, the result equals the
// unfused graph's (the fused path steps aside).
TEST(FusedQuantConv, NonPlainQuantizersAndPaddingModesTakeTheUnfusedPath) {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({2, 3, 7, 7});
  std::vector<std::pair<std::string, std::function<void(nn::QuantConv2d&)>>> cases = {
      {"input disabled", [](nn::QuantConv2d& c) { c->_input_quantizer->disable(); }},
      {"weight quant off", [](nn::QuantConv2d& c) { c->_weight_quantizer->disable_quant(); }},
      {"pre_quant_scale",
       [](nn::QuantConv2d& c) { c->_input_quantizer->set_pre_quant_scale(torch::full({1}, 0.5)); }},
      {"calibrating", [](nn::QuantConv2d& c) { c->_input_quantizer->enable_calib(); }},
  };
  for (auto& [name, change] : cases) {
    nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
    change(conv);
    EXPECT_EQ(grad_fn_name(conv, x), "ConvolutionBackward0") << name;
    const Grads fused = run(conv, x, true);
    const Grads unfused = run(conv, x, false);
    expect_same(fused, unfused, name);
  }
  for (const auto& mode :
       std::vector<torch::nn::detail::conv_padding_mode_t>{torch::kReflect, torch::kCircular}) {
    nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1).padding_mode(mode));
    expect_same(run(conv, x, true), run(conv, x, false), "padding mode");
  }
  nn::QuantConv2d same(torch::nn::Conv2dOptions(3, 4, 3).padding(torch::kSame));
  expect_same(run(same, x, true), run(same, x, false), "'same' padding");
}

TEST(FusedQuantConv, InferenceAndTheSwitch) {
  FusedSwitch restore;
  EXPECT_TRUE(nn::fused_quant_conv());  // the default
  nn::set_fused_quant_conv(false);
  EXPECT_FALSE(nn::fused_quant_conv());
  nn::set_fused_quant_conv(true);
  torch::manual_seed(4);
  nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const at::Tensor x = torch::randn({1, 3, 5, 5});
  torch::NoGradGuard no_grad;
  const at::Tensor y = conv(x);
  EXPECT_FALSE(y.requires_grad());
  nn::set_fused_quant_conv(false);
  EXPECT_TRUE(y.equal(conv(x)));
}

// Without gradients on the CPU the fused path quantizes each input into the thread's buffer:
// two layers in a row (the second quantizes while the first's output is alive), a large input
// and then a smaller one (a narrowed view of the buffer), a clipping amax and a dynamic one, all
// bit-identical to the unfused path; an output never shares the buffer.
TEST(FusedQuantConv, InferenceThroughTheThreadBufferEqualsTheUnfusedPath) {
  FusedSwitch restore;
  torch::manual_seed(12);
  nn::QuantConv2d first(torch::nn::Conv2dOptions(3, 8, 3).padding(1));
  nn::QuantConv2d second(torch::nn::Conv2dOptions(8, 4, 3).stride(2));
  clip_amax(first);
  torch::NoGradGuard no_grad;
  for (const auto& sizes : {std::vector<int64_t>{2, 3, 17, 17}, std::vector<int64_t>{1, 3, 6, 6}}) {
    const at::Tensor x = torch::randn(sizes) * 2;
    nn::set_fused_quant_conv(false);
    const at::Tensor want = second(first(x));
    nn::set_fused_quant_conv(true);
    const at::Tensor hidden = first(x);
    const at::Tensor kept = hidden.clone();
    const at::Tensor got = second(hidden);
    EXPECT_TRUE(got.equal(want)) << at::IntArrayRef(sizes);
    EXPECT_TRUE(hidden.equal(kept))
        << "the second layer's quantization overwrote the first's output";
  }
  nn::release_fused_quant_conv_buffers();
  const at::Tensor x = torch::randn({1, 3, 9, 9});
  EXPECT_TRUE(first(x).equal(first(x)));  // after a release, a fresh buffer
}

}  // namespace
}  // namespace torchquant
