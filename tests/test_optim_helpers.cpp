// Optimizer helpers: match / group / freeze parameters by regex, quantize weights in place.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_rnn.h"
#include "torchquant/optim/helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using optim::ParamGroupOptions;
using testing::expect_error;

// Parameters: conv1.weight, conv1.bias, conv1._input_quantizer.clip.clip_value_{min,max},
// bn1.weight, bn1.bias, fc.weight, fc.bias.
struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(3, 4, 3),
                                              nn::QuantLayerOptions().quant_desc_input(
                                                  QuantDescriptor().amax(4.0).learn_amax(true))))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(4))),
        fc(register_module("fc", nn::QuantLinear(torch::nn::LinearOptions(4, 2)))) {}
  nn::QuantConv2d conv1;
  torch::nn::BatchNorm2d bn1;
  nn::QuantLinear fc;
};

std::vector<std::string> keys(const torch::OrderedDict<std::string, at::Tensor>& d) {
  return d.keys();
}

struct CaptureWarnings : c10::WarningHandler {
  void process(const c10::Warning& w) override { messages.push_back(w.msg()); }
  std::vector<std::string> messages;
};

TEST(OptimHelpers, MatchParametersSearchesDottedNamesOnce) {
  NetImpl net;
  EXPECT_EQ(keys(optim::match_parameters(net, {"weight$"})),
            (std::vector<std::string>{"conv1.weight", "bn1.weight", "fc.weight"}));
  // conv1.weight matches both patterns and is returned once (upstream yields it twice).
  EXPECT_EQ(keys(optim::match_parameters(net, {"^conv1\\.", "weight"})),
            (std::vector<std::string>{
                "conv1.weight", "conv1.bias", "conv1._input_quantizer.clip.clip_value_min",
                "conv1._input_quantizer.clip.clip_value_max", "bn1.weight", "fc.weight"}));
  EXPECT_TRUE(optim::match_parameters(net, {}).is_empty());
  EXPECT_TRUE(optim::match_parameters(net, {"running_mean"}).is_empty());  // buffers are not
  const auto clip = optim::match_parameters(net, {"clip_value_max"});
  EXPECT_TRUE(clip[0].value().is_same(net.conv1->_input_quantizer->clip->clip_value_max));
  expect_error(
      [&] {
        optim::match_parameters(net, {"conv", "(weight"});
      },
      {"torchquant::optim::match_parameters: invalid regex '(weight'"});
}

TEST(OptimHelpers, GroupParametersForSGD) {
  NetImpl net;
  const auto defaults = torch::optim::SGDOptions(0.1).momentum(0.5).dampening(0.1);
  auto groups = optim::group_parameters(
      net,
      {ParamGroupOptions({"clip_value"}).lr(1e-2),
       ParamGroupOptions({"weight$", "bias$"}).momentum(0.9).weight_decay(1e-4)},
      defaults);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params().size(), 2u);
  EXPECT_EQ(groups[1].params().size(), 6u);
  const auto& o0 = static_cast<const torch::optim::SGDOptions&>(groups[0].options());
  const auto& o1 = static_cast<const torch::optim::SGDOptions&>(groups[1].options());
  EXPECT_EQ(o0.lr(), 1e-2);
  EXPECT_EQ(o0.momentum(), 0.5);  // the default
  EXPECT_EQ(o0.dampening(), 0.1);
  EXPECT_EQ(o1.lr(), 0.1);
  EXPECT_EQ(o1.momentum(), 0.9);
  EXPECT_EQ(o1.weight_decay(), 1e-4);

  // The groups drive a real optimizer: one step with unit gradients moves the clip bound by lr.
  torch::optim::SGD sgd(std::move(groups), defaults);
  for (auto& p : net.parameters()) p.mutable_grad() = torch::ones_like(p);
  sgd.step();
  EXPECT_FLOAT_EQ(net.conv1->_input_quantizer->clip->clip_value_max.item<float>(), 4.0f - 1e-2f);
  EXPECT_FLOAT_EQ(net.bn1->weight[0].item<float>(), 1.0f - 0.1f * (1.0f + 1e-4f));
}

TEST(OptimHelpers, GroupParametersForOtherOptimizers) {
  NetImpl net;
  auto adam = optim::group_parameters(net,
                                      {ParamGroupOptions({"clip"}).lr(1e-2).weight_decay(0.1),
                                       ParamGroupOptions({"weight", "bias"})},
                                      torch::optim::AdamOptions(1e-3).betas({0.8, 0.9}));
  const auto& a0 = static_cast<const torch::optim::AdamOptions&>(adam[0].options());
  EXPECT_EQ(a0.lr(), 1e-2);
  EXPECT_EQ(a0.weight_decay(), 0.1);
  EXPECT_EQ(std::get<0>(a0.betas()), 0.8);
  torch::optim::Adam optimizer(std::move(adam), torch::optim::AdamOptions(1e-3));
  EXPECT_EQ(optimizer.param_groups().size(), 2u);

  auto rms = optim::group_parameters(net, {ParamGroupOptions({"fc"}).momentum(0.7)},
                                     torch::optim::RMSpropOptions(1e-2));
  EXPECT_EQ(static_cast<const torch::optim::RMSpropOptions&>(rms[0].options()).momentum(), 0.7);
  auto adamw = optim::group_parameters(net, {ParamGroupOptions({"fc"}).lr(3.0)},
                                       torch::optim::AdamWOptions(1e-3));
  EXPECT_EQ(static_cast<const torch::optim::AdamWOptions&>(adamw[0].options()).weight_decay(),
            1e-2);  // AdamW's own default
  auto adagrad = optim::group_parameters(net, {ParamGroupOptions({"fc"}).weight_decay(0.5)},
                                         torch::optim::AdagradOptions(1e-2));
  EXPECT_EQ(static_cast<const torch::optim::AdagradOptions&>(adagrad[0].options()).weight_decay(),
            0.5);

  for (const char* name : {"Adam", "AdamW", "Adagrad"}) {
    SCOPED_TRACE(name);
    const std::vector<ParamGroupOptions> g = {ParamGroupOptions({"fc"}).momentum(0.9)};
    expect_error(
        [&] {
          if (std::string(name) == "Adam")
            optim::group_parameters(net, g, torch::optim::AdamOptions());
          if (std::string(name) == "AdamW")
            optim::group_parameters(net, g, torch::optim::AdamWOptions());
          if (std::string(name) == "Adagrad") {
            optim::group_parameters(net, g, torch::optim::AdagradOptions());
          }
        },
        {"torchquant::optim::group_parameters: group 0 ['fc']: " + std::string(name) +
         " has no momentum"});
  }
}

TEST(OptimHelpers, BadGroupsAreErrors) {
  NetImpl net;
  const torch::optim::SGDOptions sgd(0.1);
  expect_error([&] { optim::group_parameters(net, {}, sgd); }, {"no groups given"});
  expect_error([&] { optim::group_parameters(net, {ParamGroupOptions({})}, sgd); },
               {"group 0 [] has no patterns"});
  expect_error(
      [&] {
        optim::group_parameters(net, {ParamGroupOptions({"fc", "[a-"})}, sgd);
      },
      {"torchquant::optim::group_parameters: invalid regex '[a-'"});
  expect_error([&] { optim::group_parameters(net, {ParamGroupOptions({"fc"}).lr(-1.0)}, sgd); },
               {"group 0 ['fc']: lr must be >= 0, got -1"});
  expect_error(
      [&] { optim::group_parameters(net, {ParamGroupOptions({"fc"}).weight_decay(-0.5)}, sgd); },
      {"weight_decay must be >= 0, got -0.5"});
  expect_error(
      [&] {
        optim::group_parameters(net, {ParamGroupOptions({"fc"}), ParamGroupOptions({"conv9"})},
                                sgd);
      },
      {"group 1 ['conv9'] matches no parameter of the model (names look like 'conv1.weight')"});
  expect_error(
      [&] {
        optim::group_parameters(
            net, {ParamGroupOptions({"^conv1\\."}), ParamGroupOptions({"weight"})}, sgd);
      },
      {"parameter 'conv1.weight' is matched by group 0 and by group 1 ['weight']",
       "patterns must select disjoint parameters"});
}

TEST(OptimHelpers, FreezeParameters) {
  NetImpl net;
  const auto frozen = optim::freeze_parameters(net, {"^bn1\\.", "clip_value_min"});
  EXPECT_EQ(frozen, (std::vector<std::string>{"conv1._input_quantizer.clip.clip_value_min",
                                              "bn1.weight", "bn1.bias"}));
  for (const auto& p : net.named_parameters()) {
    const bool want_frozen = std::find(frozen.begin(), frozen.end(), p.key()) != frozen.end();
    EXPECT_EQ(p.value().requires_grad(), !want_frozen) << p.key();
  }
  EXPECT_TRUE(optim::freeze_parameters(net, {"nothing"}).empty());
  expect_error([&] { optim::freeze_parameters(net, {"*"}); },
               {"torchquant::optim::freeze_parameters: invalid regex '*'"});
}

TEST(OptimHelpers, QuantWeightInplaceUsesEachWeightQuantizer) {
  torch::manual_seed(0);
  torch::nn::Sequential model(
      nn::QuantConv2d(torch::nn::Conv2dOptions(3, 4, 3)),
      nn::QuantLinear(torch::nn::LinearOptions(4, 2),
                      nn::QuantLayerOptions().quant_desc_weight(QuantDescriptor().amax(0.1))),
      torch::nn::Linear(2, 2));
  auto conv = model[0]->as<nn::QuantConv2dImpl>();
  auto fc = model[1]->as<nn::QuantLinearImpl>();
  const at::Tensor conv_before = conv->weight.detach().clone();
  const at::Tensor fc_before = fc->weight.detach().clone();
  const at::Tensor plain_before = model[2]->as<torch::nn::LinearImpl>()->weight.detach().clone();
  const void* conv_storage = conv->weight.data_ptr();

  const auto changed = optim::quant_weight_inplace(*model);
  EXPECT_EQ(changed, (std::vector<std::string>{"0", "1"}));
  // conv: dynamic per-channel amax; fc: fixed per-tensor amax 0.1.
  const at::Tensor conv_amax = conv_before.abs().amax({1, 2, 3}, /*keepdim=*/true);
  EXPECT_TRUE(conv->weight.equal(
      fake_tensor_quant(conv_before, conv_amax, 8, false, /*narrow_range=*/false)));
  EXPECT_TRUE(
      fc->weight.equal(fake_tensor_quant(fc_before, torch::scalar_tensor(0.1f), 8, false, false)));
  EXPECT_FALSE(fc->weight.equal(fc_before));
  EXPECT_TRUE(model[2]->as<torch::nn::LinearImpl>()->weight.equal(plain_before));
  // In place, still a trainable leaf, no graph.
  EXPECT_EQ(conv->weight.data_ptr(), conv_storage);
  EXPECT_TRUE(conv->weight.requires_grad());
  EXPECT_TRUE(conv->weight.is_leaf());
  EXPECT_TRUE(conv->_weight_quantizer->is_enabled());  // left as it is, as upstream
}

TEST(OptimHelpers, QuantWeightInplaceWarnsForRealQuantAndSkipsCells) {
  torch::nn::Sequential model(nn::QuantConv2d(torch::nn::Conv2dOptions(1, 2, 1),
                                              nn::QuantLayerOptions().quant_desc_weight(
                                                  QuantDescriptor().axis(0).fake_quant(false))),
                              nn::QuantLSTMCell(3, 2));
  CaptureWarnings capture;
  std::vector<std::string> changed;
  {
    c10::WarningUtils::WarningHandlerGuard guard(&capture);
    changed = optim::quant_weight_inplace(*model);
  }
  EXPECT_EQ(changed, std::vector<std::string>{"0"});
  auto conv = model[0]->as<nn::QuantConv2dImpl>();
  EXPECT_TRUE(conv->weight.equal(conv->weight.round()));  // integers now
  ASSERT_EQ(capture.messages.size(), 2u);
  EXPECT_NE(capture.messages[0].find("'0' uses real quantization"), std::string::npos);
  EXPECT_NE(capture.messages[1].find("'1' has a _weight_quantizer but no 'weight' parameter"),
            std::string::npos);
}

}  // namespace
}  // namespace torchquant
