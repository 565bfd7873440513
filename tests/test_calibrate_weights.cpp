// calibrate_weights against reference group f (pytorch_quantization 2.2.1), and its errors.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reference.h"
#include "test_helpers.h"
#include "torchquant/calib/calibrate_weights.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"

namespace torchquant {
namespace {

using testing::RefCase;

// The reference model: conv1, conv2, deconv (upstream's axis-1 ConvTranspose descriptor), fc1, fc2.
struct ModelImpl : torch::nn::Module {
  ModelImpl()
      : conv1(register_module("conv1",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(3, 6, 3).padding(1)))),
        conv2(register_module("conv2",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(6, 5, {3, 2}).bias(false)))),
        deconv(register_module(
            "deconv", nn::QuantConvTranspose2d(
                          torch::nn::ConvTranspose2dOptions(5, 4, 2).stride(2),
                          nn::QuantLayerOptions().quant_desc_weight(
                              QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL_AXIS1())))),
        fc1(register_module("fc1", nn::QuantLinear(torch::nn::LinearOptions(20, 9)))),
        fc2(register_module("fc2", nn::QuantLinear(torch::nn::LinearOptions(9, 3)))) {}
  nn::QuantConv2d conv1, conv2;
  nn::QuantConvTranspose2d deconv;
  nn::QuantLinear fc1, fc2;
};

const char* kLayers[] = {"conv1", "conv2", "deconv", "fc1", "fc2"};

class CalibrateWeightsReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(CalibrateWeightsReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  const auto& p = c.meta["params"];
  ModelImpl model;
  {
    torch::NoGradGuard no_grad;
    for (const char* layer : kLayers) {
      model.named_parameters()[std::string(layer) + ".weight"].copy_(
          c.tensor(std::string(layer) + "_weight"));
    }
  }
  const std::string method = p["method"].get<std::string>();
  const bool perchannel = p["perchannel"].get<bool>();
  const int64_t n = calib::calibrate_weights(
      model, method, perchannel, p["percentile"].get<double>(), p["num_bins"].get<int64_t>());
  EXPECT_EQ(n, 5);
  if (c.meta.contains("expected_exception")) {
    // Upstream raises for max per tensor (a bug); we calibrate with max |w|.
    for (const char* layer : kLayers) {
      const auto& w = model.named_parameters()[std::string(layer) + ".weight"];
      const at::Tensor amax =
          model.named_buffers()[std::string(layer) + "._weight_quantizer._amax"];
      EXPECT_EQ(amax.dim(), 0);
      EXPECT_EQ(amax.item<float>(), w.abs().max().item<float>());
    }
    return;
  }
  for (const char* layer : kLayers) {
    const at::Tensor amax = model.named_buffers()[std::string(layer) + "._weight_quantizer._amax"];
    EXPECT_TRUE(testing::all_close(amax, c.tensor(std::string(layer) + "_expected_amax"), 0, 0))
        << layer;
  }
}

INSTANTIATE_TEST_SUITE_P(F, CalibrateWeightsReference,
                         ::testing::ValuesIn(testing::reference_cases("f_calibrate_weights")),
                         [](const auto& info) { return testing::case_name(info.param); });

TEST(CalibrateWeights, HonoursNumBinsPerTensorAndChecksArguments) {
  nn::QuantLinear fc(torch::nn::LinearOptions(64, 32));
  calib::calibrate_weights(*fc, "percentile", false, 50.0, 16);
  const float coarse = fc->_weight_quantizer->amax().item<float>();
  calib::calibrate_weights(*fc, "percentile", false, 50.0, 4096);
  const float fine = fc->_weight_quantizer->amax().item<float>();
  EXPECT_NE(coarse, fine) << "upstream ignores num_bins per tensor";
  testing::expect_error([&] { calib::calibrate_weights(*fc, "entropy"); },
                        {"calibrate_weights", "unknown method \"entropy\""});
  testing::expect_error([&] { calib::calibrate_weights(*fc, "percentile", true, 120); },
                        {"percentile", "[0, 100]", "120"});
  testing::expect_error([&] { calib::calibrate_weights(*fc, "mse", true, 99.0, 0); },
                        {"num_bins", "0"});
}

}  // namespace
}  // namespace torchquant
