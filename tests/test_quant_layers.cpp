// Quant layers beyond the reference cases: float equality, padding modes, defaults, from_float,
// clone, state, printing, QuantAdd / QuantConcat.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_pooling.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::expect_error;

// Runs `fn` with quant_modules deactivated, re-activating afterwards even on failure.
struct Deactivated {
  Deactivated() { nn::quant_modules::deactivate(); }
  ~Deactivated() { nn::quant_modules::initialize(); }
};

TEST(QuantLayers, SameSeedGivesTheFloatLayersWeights) {
  torch::manual_seed(7);
  torch::nn::Conv2d fconv(torch::nn::Conv2dOptions(3, 8, 3));
  torch::manual_seed(7);
  nn::QuantConv2d qconv(torch::nn::Conv2dOptions(3, 8, 3));
  EXPECT_TRUE(torch::equal(fconv->weight, qconv->weight));
  EXPECT_TRUE(torch::equal(fconv->bias, qconv->bias));
}

TEST(QuantLayers, EveryPaddingModeEqualsTheFloatLayerWhenDeactivated) {
  using torch::nn::Conv2dOptions;
  const at::Tensor x = torch::randn({2, 3, 9, 8});
  std::vector<Conv2dOptions> variants;
  const std::vector<torch::nn::detail::conv_padding_mode_t> modes = {
      torch::kZeros, torch::kReflect, torch::kReplicate, torch::kCircular};
  for (const auto& mode : modes) {
    variants.push_back(Conv2dOptions(3, 4, 3).padding(1).padding_mode(mode));
    variants.push_back(Conv2dOptions(3, 4, {3, 2}).padding({2, 1}).stride(2).padding_mode(mode));
    variants.push_back(Conv2dOptions(3, 4, 3).padding(torch::kSame).dilation(2).padding_mode(mode));
  }
  variants.push_back(Conv2dOptions(3, 4, 3).padding(torch::kValid));
  for (const auto& options : variants) {
    torch::nn::Conv2d fconv(options);
    auto qconv = nn::QuantConv2d(nn::QuantConv2dImpl::from_float(fconv.ptr()));
    const at::Tensor expected = fconv(x);
    {
      Deactivated off;
      const at::Tensor got = qconv(x);
      EXPECT_EQ(got.sizes(), expected.sizes());  // upstream's 'circular' gets the shape wrong
      EXPECT_TRUE(torch::equal(got, expected));  // upstream pads reflect/replicate with zeros
    }
    // With quantization on, the padding is still the mode's (a fake-quantized float conv).
    const at::Tensor xq = fake_tensor_quant(x, x.abs().max(), 8, false, false);
    const at::Tensor wq = fake_tensor_quant(
        fconv->weight, fconv->weight.abs().amax({1, 2, 3}, true), 8, false, false);
    torch::nn::Conv2d reference(options);
    {
      torch::NoGradGuard no_grad;
      reference->weight.copy_(wq);
      reference->bias.copy_(fconv->bias);
    }
    EXPECT_TRUE(torch::allclose(qconv(x), reference(xq), 1e-5, 1e-5));
  }
}

TEST(QuantLayers, DisabledQuantizersAlsoGiveTheFloatResult) {
  torch::nn::Linear flinear(torch::nn::LinearOptions(6, 3));
  auto qlinear = nn::QuantLinear(nn::QuantLinearImpl::from_float(flinear.ptr()));
  qlinear->_input_quantizer->disable();
  qlinear->_weight_quantizer->disable();
  const at::Tensor x = torch::randn({4, 6});
  EXPECT_TRUE(torch::equal(qlinear(x), flinear(x)));
}

TEST(QuantLayers, ConvTransposeMatchesFloatIncludingOutputSize) {
  torch::nn::ConvTranspose2d fconv(torch::nn::ConvTranspose2dOptions(4, 3, 3).stride(2).padding(1));
  auto qconv = nn::QuantConvTranspose2d(nn::QuantConvTranspose2dImpl::from_float(fconv.ptr()));
  EXPECT_EQ(*qconv->_weight_quantizer->axis(), std::vector<int64_t>{0})
      << "TensorRT's ConvTranspose axis by default";
  const at::Tensor x = torch::randn({1, 4, 5, 6});
  Deactivated off;
  for (const std::vector<int64_t>& size : {std::vector<int64_t>{9, 11}, {10, 12}}) {
    const at::Tensor got = qconv(x, at::IntArrayRef(size));
    EXPECT_TRUE(torch::equal(got, fconv(x, at::IntArrayRef(size))));
    EXPECT_EQ(got.size(2), size[0]);
  }
  expect_error(
      [&] {
        qconv(x, at::IntArrayRef({13, 11}));
      },
      {"QuantConvTranspose2d", "output size of 13", "range from 9 to 10"});
  torch::nn::ConvTranspose1d f1(torch::nn::ConvTranspose1dOptions(2, 2, 3));
  auto q1 = nn::QuantConvTranspose1dImpl::from_float(f1.ptr());
  const at::Tensor x1 = torch::randn({1, 2, 7});
  EXPECT_TRUE(torch::equal(q1->forward(x1), f1(x1)));
}

TEST(QuantLayers, PoolingAndInstanceNormEqualFloatWhenDeactivated) {
  const at::Tensor x = torch::randn({2, 3, 9, 10});
  nn::QuantMaxPool2d qmax(torch::nn::MaxPool2dOptions(3).stride(2).padding(1));
  nn::QuantAvgPool2d qavg(torch::nn::AvgPool2dOptions(2).ceil_mode(true));
  nn::QuantAdaptiveAvgPool2d qada(torch::nn::AdaptiveAvgPool2dOptions({3, 2}));
  nn::QuantInstanceNorm2d qnorm(torch::nn::InstanceNorm2dOptions(3).affine(true));
  Deactivated off;
  EXPECT_TRUE(torch::equal(qmax(x), torch::nn::MaxPool2d(qmax->options)(x)));
  EXPECT_TRUE(torch::equal(qavg(x), torch::nn::AvgPool2d(qavg->options)(x)));
  EXPECT_TRUE(torch::equal(qada(x), torch::nn::AdaptiveAvgPool2d(qada->options)(x)));
  EXPECT_TRUE(torch::equal(qnorm(x), qnorm->float_module()->forward(x)));
}

TEST(QuantLayers, DefaultDescriptorsAndScopedGuard) {
  using nn::QuantConv2dImpl;
  const QuantDescriptor histogram = QuantDescriptor().calib_method("histogram");
  {
    nn::ScopedDefaultQuantDesc<QuantConv2dImpl> guard(histogram,
                                                      QuantDescriptor().axis(0).num_bits(4));
    nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 8, 3));
    EXPECT_EQ(conv->_input_quantizer->calibrator()->name(), "HistogramCalibrator");
    EXPECT_EQ(conv->_weight_quantizer->num_bits(), NumBits(4));
    // Another class keeps its own defaults.
    nn::QuantConv1d conv1(torch::nn::Conv1dOptions(3, 8, 3));
    EXPECT_EQ(conv1->_input_quantizer->calibrator()->name(), "MaxCalibrator");
  }
  EXPECT_EQ(QuantConv2dImpl::default_quant_desc_input(), QUANT_DESC_8BIT_PER_TENSOR());
  EXPECT_EQ(QuantConv2dImpl::default_quant_desc_weight(),
            QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL());
  QuantConv2dImpl::set_default_quant_desc_input(histogram);
  nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 8, 3));
  QuantConv2dImpl::set_default_quant_desc_input(QUANT_DESC_8BIT_PER_TENSOR());
  EXPECT_EQ(conv->_input_quantizer->calibrator()->name(), "HistogramCalibrator");
  // An explicit descriptor wins over the default.
  nn::QuantLinear linear(torch::nn::LinearOptions(4, 2),
                         nn::QuantLayerOptions().quant_desc_weight(QuantDescriptor().num_bits(6)));
  EXPECT_EQ(linear->_weight_quantizer->num_bits(), NumBits(6));
}

TEST(QuantLayers, FromFloatSharesTheTensors) {
  torch::nn::Conv2d fconv(torch::nn::Conv2dOptions(3, 4, 3));
  auto q = nn::QuantConv2dImpl::from_float(fconv.ptr());
  EXPECT_TRUE(q->weight.is_same(fconv->weight));
  EXPECT_TRUE(q->named_parameters()["bias"].is_same(fconv->bias));
  {
    torch::NoGradGuard no_grad;
    fconv->weight.fill_(0.5f);
  }
  EXPECT_EQ(q->weight.mean().item<float>(), 0.5f);
  expect_error([] { nn::QuantConv2dImpl::from_float(nullptr); }, {"from_float", "null"});
}

TEST(QuantLayers, StateNamesAreUpstreams) {
  nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  conv->_input_quantizer->set_amax(1.0);
  std::vector<std::string> names;
  for (const auto& p : conv->named_parameters()) names.push_back(p.key());
  for (const auto& b : conv->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "_input_quantizer._amax"}));
  nn::QuantInstanceNorm2d norm(
      torch::nn::InstanceNorm2dOptions(3).affine(true).track_running_stats(true));
  names.clear();
  for (const auto& b : norm->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names,
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
}

TEST(QuantLayers, CloneIsDeep) {
  nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  conv->_weight_quantizer->set_amax(torch::ones({4, 1, 1, 1}));
  auto copy = std::dynamic_pointer_cast<nn::QuantConv2dImpl>(conv->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->weight, conv->weight));
  {
    torch::NoGradGuard no_grad;
    copy->weight.fill_(3.f);
    copy->_weight_quantizer->amax().fill_(2.f);
  }
  EXPECT_FALSE(torch::equal(copy->weight, conv->weight));
  EXPECT_EQ(conv->_weight_quantizer->amax().max().item<float>(), 1.f);
  const at::Tensor x = torch::randn({1, 3, 5, 5});
  EXPECT_EQ(copy->forward(x).sizes(), conv(x).sizes());
  EXPECT_TRUE(copy->float_module()->weight.is_same(copy->weight));
}

TEST(QuantLayers, SaveLoadRoundTrip) {
  nn::QuantLinear a(torch::nn::LinearOptions(5, 3));
  a->_input_quantizer->set_amax(2.0);
  a->_weight_quantizer->set_amax(torch::full({3, 1}, 0.5f));
  std::stringstream stream;
  torch::save(a, stream);
  nn::QuantLinear b(torch::nn::LinearOptions(5, 3));
  torch::load(b, stream);
  EXPECT_TRUE(torch::equal(a->weight, b->weight));
  EXPECT_TRUE(torch::equal(b->_weight_quantizer->amax(), torch::full({3, 1}, 0.5f)));
  const at::Tensor x = torch::randn({2, 5});
  EXPECT_TRUE(torch::equal(a(x), b(x)));
}

TEST(QuantLayers, PrintLikeTheirFloatTwins) {
  std::ostringstream os;
  os << *nn::QuantConv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1));
  EXPECT_EQ(
      os.str(),
      "torchquant::nn::QuantConv2d(3, 8, kernel_size=[3, 3], stride=[1, 1], padding=[1, 1])(\n"
      "  (_input_quantizer): TensorQuantizer(8bit fake per-tensor amax=dynamic "
      "calibrator=MaxCalibrator scale=1.0 quant)\n"
      "  (_weight_quantizer): TensorQuantizer(8bit fake axis=0 amax=dynamic "
      "calibrator=MaxCalibrator scale=1.0 quant)\n"
      ")");
  std::ostringstream lin;
  nn::QuantLinear(torch::nn::LinearOptions(4, 2))->pretty_print(lin);
  EXPECT_EQ(lin.str(), "torchquant::nn::QuantLinear(in_features=4, out_features=2, bias=true)");
}

TEST(QuantAdd, QuantizesOneOrBothInputs) {
  const at::Tensor a = torch::randn({4, 8}), b = torch::randn({4, 8}) * 3;
  nn::QuantAdd both;
  nn::QuantAdd first(nn::QuantAddOptions().quantize_both(false));
  auto fq = [](const at::Tensor& t) {
    return fake_tensor_quant(t, t.abs().max(), 8, false, false);
  };
  EXPECT_TRUE(torch::equal(both(a, b), fq(a) + fq(b)));
  EXPECT_TRUE(torch::equal(first(a, b), fq(a) + b));
  EXPECT_FALSE(first->_input1_quantizer);
  Deactivated off;
  EXPECT_TRUE(torch::equal(both(a, b), a + b));
}

TEST(QuantConcat, OneQuantizerForEveryInput) {
  nn::QuantConcat cat(1);
  cat->_input_quantizer->set_amax(2.0);
  const at::Tensor a = torch::randn({2, 3}), b = torch::randn({2, 5});
  const at::Tensor amax = torch::tensor(2.f);
  EXPECT_TRUE(
      torch::equal(cat->forward({a, b}), torch::cat({fake_tensor_quant(a, amax, 8, false, false),
                                                     fake_tensor_quant(b, amax, 8, false, false)},
                                                    1)));
  expect_error([&] { cat->forward({}); }, {"QuantConcat", "at least one input"});
}

}  // namespace
}  // namespace torchquant
