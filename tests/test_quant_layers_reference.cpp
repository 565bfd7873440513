// Conformance of the quant layers with pytorch_quantization 2.2.1: reference group h (outputs and
// input / weight / bias gradients; QuantLSTM is tested in test_quant_rnn.cpp).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <map>

#include "reference.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_pooling.h"

namespace torchquant {
namespace {

using testing::all_close;
using testing::RefCase;

std::vector<int64_t> ints(const nlohmann::json& v, size_t dims) {
  if (v.is_array()) return v.get<std::vector<int64_t>>();
  return std::vector<int64_t>(dims, v.get<int64_t>());
}

template <size_t D>
torch::ExpandingArray<D> arr(const nlohmann::json& v) {
  return torch::ExpandingArray<D>(ints(v, D));
}

// Builds the case's layer from its class name, args and kwargs, as Python would.
std::shared_ptr<torch::nn::Module> build(const RefCase& c,
                                         std::function<at::Tensor(at::Tensor)>* fwd) {
  const auto& p = c.meta["params"];
  const std::string cls = p["class"].get<std::string>();
  const auto& a = p["args"];
  const auto& kw = p["kwargs"];
  auto n = [](const nlohmann::json& v) { return v.get<int64_t>(); };
  auto get = [&](const char* key, const nlohmann::json& fallback) {
    return kw.contains(key) ? kw[key] : fallback;
  };
  if (cls.find("QuantConv1d") != std::string::npos) {
    nn::QuantConv1d m(torch::nn::Conv1dOptions(n(a[0]), n(a[1]), arr<1>(a[2]))
                          .stride(arr<1>(get("stride", 1)))
                          .padding(arr<1>(get("padding", 0))));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantConv2d") != std::string::npos) {
    nn::QuantConv2d m(torch::nn::Conv2dOptions(n(a[0]), n(a[1]), arr<2>(a[2]))
                          .stride(arr<2>(get("stride", 1)))
                          .padding(arr<2>(get("padding", 0)))
                          .dilation(arr<2>(get("dilation", 1)))
                          .groups(get("groups", 1).get<int64_t>())
                          .bias(get("bias", true).get<bool>()));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantConv3d") != std::string::npos) {
    nn::QuantConv3d m(torch::nn::Conv3dOptions(n(a[0]), n(a[1]), arr<3>(a[2]))
                          .padding(arr<3>(get("padding", 0))));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantConvTranspose2d") != std::string::npos) {
    // Upstream quantizes ConvTranspose weights per axis 1; our default is axis 0 (TensorRT's
    // layout, see docs/quantizer.md), so the case asks for upstream's descriptor explicitly.
    nn::QuantConvTranspose2d m(torch::nn::ConvTranspose2dOptions(n(a[0]), n(a[1]), arr<2>(a[2]))
                                   .stride(arr<2>(get("stride", 1)))
                                   .padding(arr<2>(get("padding", 0)))
                                   .output_padding(arr<2>(get("output_padding", 0))),
                               nn::QuantLayerOptions().quant_desc_weight(
                                   QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL_AXIS1()));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantLinear") != std::string::npos) {
    nn::QuantLinear m(
        torch::nn::LinearOptions(n(a[0]), n(a[1])).bias(get("bias", true).get<bool>()));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantMaxPool2d") != std::string::npos) {
    nn::QuantMaxPool2d m(torch::nn::MaxPool2dOptions(arr<2>(a[0]))
                             .stride(arr<2>(get("stride", a[0])))
                             .padding(arr<2>(get("padding", 0))));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantAvgPool2d") != std::string::npos) {
    nn::QuantAvgPool2d m(torch::nn::AvgPool2dOptions(arr<2>(a[0]))
                             .stride(arr<2>(get("stride", a[0])))
                             .padding(arr<2>(get("padding", 0)))
                             .ceil_mode(get("ceil_mode", false).get<bool>())
                             .count_include_pad(get("count_include_pad", true).get<bool>()));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantAdaptiveAvgPool2d") != std::string::npos) {
    const auto size = ints(a[0], 2);
    nn::QuantAdaptiveAvgPool2d m(torch::nn::AdaptiveAvgPool2dOptions({size[0], size[1]}));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  if (cls.find("QuantInstanceNorm2d") != std::string::npos) {
    nn::QuantInstanceNorm2d m(
        torch::nn::InstanceNorm2dOptions(n(a[0])).affine(get("affine", false).get<bool>()));
    *fwd = [m](at::Tensor x) mutable { return m(x); };
    return m.ptr();
  }
  return nullptr;
}

class QuantLayerReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(QuantLayerReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  std::function<at::Tensor(at::Tensor)> forward;
  auto module = build(c, &forward);
  ASSERT_TRUE(module) << "unhandled class " << c.meta["params"]["class"];
  auto params = module->named_parameters(/*recurse=*/false);
  {
    torch::NoGradGuard no_grad;
    for (const char* name : {"weight", "bias"}) {
      const std::string role = std::string("param_") + name;
      ASSERT_EQ(c.has(role), params.contains(name)) << name;
      if (c.has(role)) params[name].copy_(c.tensor(role));
    }
  }
  at::Tensor x = c.tensor("input").clone().requires_grad_(true);
  at::Tensor out = forward(x);
  const double atol = c.atol(), rtol = c.rtol();
  EXPECT_TRUE(all_close(out.detach(), c.tensor("expected_output"), atol, rtol));
  out.sum().backward();
  EXPECT_TRUE(all_close(x.grad(), c.tensor("expected_grad_input"), atol, rtol));
  for (const char* name : {"weight", "bias"}) {
    const std::string role = std::string("expected_grad_") + name;
    if (c.has(role)) {
      EXPECT_TRUE(all_close(params[name].grad(), c.tensor(role), atol, rtol)) << name;
    }
  }
}

std::vector<RefCase> layer_cases() {
  std::vector<RefCase> out;
  for (auto& c : testing::reference_cases("h_modules")) {
    if (c.meta["params"]["class"].get<std::string>().find("LSTM") == std::string::npos) {
      out.push_back(c);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(H, QuantLayerReference, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return testing::case_name(info.param); });

TEST(QuantLayerReferenceCount, ThirteenNonRecurrentCases) { EXPECT_EQ(layer_cases().size(), 13u); }

}  // namespace
}  // namespace torchquant
