// Replacing the layers of a realistic LibTorch model: what each mechanism reaches.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_pooling.h"
#include "torchquant/quant_modules.h"

namespace torchquant {
namespace {

// A ResNet-style model written the way users write LibTorch models: typed holders, a Sequential
// inside, residual additions. `NN` is torch::nn or the quant alias (mechanism 1).
struct FloatLayers {
  using Conv2d = torch::nn::Conv2d;
  using Linear = torch::nn::Linear;
  using AvgPool = torch::nn::AdaptiveAvgPool2d;
  static at::Tensor add(torch::nn::Module&, const at::Tensor& a, const at::Tensor& b) {
    return a + b;
  }
};
struct QuantLayers {
  using Conv2d = nn::QuantConv2d;
  using Linear = nn::QuantLinear;
  using AvgPool = nn::QuantAdaptiveAvgPool2d;
};

template <typename NN>
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module(
            "conv1",
            typename NN::Conv2d(
                torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module(
            "conv2",
            typename NN::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))),
        add(register_module("add", nn::QuantAdd())) {
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample",
          torch::nn::Sequential(
              torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
              torch::nn::BatchNorm2d(out)));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(add(y, downsample ? downsample->forward(x) : x));
  }
  typename NN::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  typename NN::Conv2d conv2;
  torch::nn::BatchNorm2d bn2;
  nn::QuantAdd add;
  torch::nn::Sequential downsample{nullptr};
};

template <typename NN>
struct NetImpl : torch::nn::Module {
  NetImpl()
      : stem(register_module("stem",
                             typename NN::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)))),
        layer1(register_module("layer1",
                               torch::nn::Sequential(std::make_shared<BlockImpl<NN>>(8, 8, 1),
                                                     std::make_shared<BlockImpl<NN>>(8, 16, 2)))),
        head(register_module(
            "head", torch::nn::Sequential(torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
                                          torch::nn::Linear(16, 10)))) {}
  at::Tensor forward(const at::Tensor& x) {
    return head->forward(layer1->forward(torch::relu(stem(x))));
  }
  typename NN::Conv2d stem;
  torch::nn::Sequential layer1;
  torch::nn::Sequential head;
};

TEST(QuantModules, ContainerRewriteReachesContainersAndReportsTheRest) {
  torch::manual_seed(0);
  auto net = std::make_shared<NetImpl<FloatLayers>>();
  net->eval();
  torch::nn::Sequential layer1_holder = net->layer1;  // another holder of the same Sequential
  const at::Tensor x = torch::randn({2, 3, 16, 16});
  nn::quant_modules::deactivate();  // the blocks' QuantAdd computes a plain sum
  const at::Tensor before = net->forward(x);
  nn::quant_modules::initialize();
  const size_t modules_before = net->named_modules().size();

  const auto report = quant_modules::replace_with_quant_layers(*net);
  EXPECT_EQ(report.swapped,
            (std::vector<std::string>{"layer1.1.downsample.0 (Conv2d -> QuantConv2d)",
                                      "head.0 (AdaptiveAvgPool2d -> QuantAdaptiveAvgPool2d)",
                                      "head.2 (Linear -> QuantLinear)"}));
  EXPECT_EQ(report.unreachable, (std::vector<std::string>{
                                    "stem (Conv2d, a member of NetImpl<FloatLayers>)",
                                    "layer1.0.conv1 (Conv2d, a member of BlockImpl<FloatLayers>)",
                                    "layer1.0.conv2 (Conv2d, a member of BlockImpl<FloatLayers>)",
                                    "layer1.1.conv1 (Conv2d, a member of BlockImpl<FloatLayers>)",
                                    "layer1.1.conv2 (Conv2d, a member of BlockImpl<FloatLayers>)"}))
      << report.str();
  // Every holder of the rewritten Sequential sees the quant layers; weights are shared.
  EXPECT_TRUE(std::dynamic_pointer_cast<nn::QuantLinearImpl>(net->head->ptr(2)));
  auto block = layer1_holder->ptr<BlockImpl<FloatLayers>>(1);
  auto down = std::dynamic_pointer_cast<nn::QuantConv2dImpl>(block->downsample->ptr(0));
  ASSERT_TRUE(down);
  EXPECT_TRUE(net->named_parameters().contains("layer1.1.downsample.0.weight"));
  EXPECT_TRUE(net->named_buffers().size() >= 10u);
  // Deactivated, the rewritten model computes exactly as before; active, it quantizes.
  nn::quant_modules::deactivate();
  const at::Tensor off = net->forward(x);
  nn::quant_modules::initialize();
  EXPECT_TRUE(torch::equal(off, before));
  EXPECT_FALSE(torch::equal(net->forward(x), before));
  // The tree keeps its shape: each swapped layer brings its quantizers (2 + 1 + 2).
  EXPECT_EQ(net->named_modules().size(), modules_before + 5);
}

TEST(QuantModules, IgnorePolicyByNamePatternAndPredicate) {
  auto net = std::make_shared<NetImpl<FloatLayers>>();
  const auto report = quant_modules::replace_with_quant_layers(
      *net, quant_modules::ReplaceOptions()
                .ignore_names({"head.2"})
                .ignore_patterns({"downsample"})
                .ignore_if([](const std::string&, const torch::nn::Module& m) {
                  return m.name().find("AdaptiveAvgPool") != std::string::npos;
                }));
  EXPECT_TRUE(report.swapped.empty()) << report.str();
  EXPECT_EQ(report.ignored, (std::vector<std::string>{"layer1.1.downsample", "head.0", "head.2"}));
  EXPECT_TRUE(std::dynamic_pointer_cast<torch::nn::LinearImpl>(net->head->ptr(2)));
}

TEST(QuantModules, QuantTypesReachEveryLayer) {
  // Mechanism 1: the same model written against the quant types; same seed, same weights.
  torch::manual_seed(3);
  auto fnet = std::make_shared<NetImpl<FloatLayers>>();
  torch::manual_seed(3);
  auto qnet = std::make_shared<NetImpl<QuantLayers>>();
  fnet->eval();
  qnet->eval();
  const auto report = quant_modules::replace_with_quant_layers(*qnet);
  EXPECT_TRUE(report.unreachable.empty()) << report.str();
  const at::Tensor x = torch::randn({2, 3, 16, 16});
  nn::quant_modules::deactivate();
  const at::Tensor off = qnet->forward(x);
  const at::Tensor float_out = fnet->forward(x);
  nn::quant_modules::initialize();
  EXPECT_TRUE(torch::equal(off, float_out));
  int quantizers = 0;
  for (const auto& m : qnet->named_modules()) {
    if (std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(m.value())) ++quantizers;
  }
  EXPECT_EQ(quantizers, 2 * 5 + 4 + 2 + 1 + 2) << "stem, 4 convs, 2 adds, downsample, head";
}

struct MyScaleImpl : torch::nn::Module {
  at::Tensor forward(const at::Tensor& x) { return x * 2; }
};
struct MyQuantScaleImpl : torch::nn::Module {
  MyQuantScaleImpl() : q(register_module("_input_quantizer", nn::TensorQuantizer())) {}
  at::Tensor forward(const at::Tensor& x) { return q(x) * 2; }
  nn::TensorQuantizer q;
};

TEST(QuantModules, UserFactories) {
  quant_modules::register_quant_factory(
      [](const std::shared_ptr<torch::nn::Module>& m,
         const nn::QuantLayerOptions&) -> c10::optional<torch::nn::AnyModule> {
        if (std::dynamic_pointer_cast<MyScaleImpl>(m)) {
          return torch::nn::AnyModule(std::make_shared<MyQuantScaleImpl>());
        }
        return c10::nullopt;
      });
  torch::nn::Sequential seq(std::make_shared<MyScaleImpl>(), torch::nn::Linear(4, 4));
  const auto report = quant_modules::replace_with_quant_layers(*seq);
  quant_modules::clear_quant_factories();
  EXPECT_EQ(report.swapped,
            (std::vector<std::string>{"0 (MyScale -> MyQuantScale)", "1 (Linear -> QuantLinear)"}));
  EXPECT_TRUE(std::dynamic_pointer_cast<MyQuantScaleImpl>(seq->ptr(0)));
  testing::expect_error([] { quant_modules::register_quant_factory(nullptr); },
                        {"register_quant_factory", "empty"});
}

TEST(QuantModules, ModuleListAndModuleDict) {
  torch::nn::ModuleList list(torch::nn::Conv1d(2, 2, 3), torch::nn::ReLU(),
                             torch::nn::LSTM(torch::nn::LSTMOptions(3, 4)));
  torch::nn::ModuleDict dict(
      std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>{
          {"fc", std::make_shared<torch::nn::LinearImpl>(3, 3)}});
  EXPECT_EQ(quant_modules::replace_with_quant_layers(*list).swapped,
            (std::vector<std::string>{"0 (Conv1d -> QuantConv1d)", "2 (LSTM -> QuantLSTM)"}));
  EXPECT_EQ(quant_modules::replace_with_quant_layers(*dict).swapped,
            std::vector<std::string>{"fc (Linear -> QuantLinear)"});
  EXPECT_TRUE(list->ptr<nn::QuantConv1dImpl>(0));
  EXPECT_TRUE(std::dynamic_pointer_cast<nn::QuantLinearImpl>(dict["fc"]));
}

}  // namespace
}  // namespace torchquant
