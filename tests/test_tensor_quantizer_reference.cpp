// Conformance of TensorQuantizer with pytorch_quantization 2.2.1: every case of reference group g
// (outputs, input and clip gradients, scales, extra_repr strings, calibration flows).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reference.h"
#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace {

using testing::all_close;
using testing::RefCase;

nn::TensorQuantizer make_quantizer(const RefCase& c) {
  const auto& params = c.meta["params"];
  auto options =
      nn::TensorQuantizerOptions(QuantDescriptor::from_json(params["quant_desc"].dump()));
  if (params.contains("tensor_quantizer_kwargs") &&
      params["tensor_quantizer_kwargs"].contains("disabled")) {
    options.disabled(params["tensor_quantizer_kwargs"]["disabled"].get<bool>());
  }
  return nn::TensorQuantizer(options);
}

// Upstream prints a per-channel real-quant scale as a whole tensor; we print [min, max](n).
bool prints_per_channel_scale(const std::string& repr) {
  return repr.find("scale=tensor(") != std::string::npos;
}

void expect_repr(const nn::TensorQuantizer& q, const std::string& expected, const RefCase& c) {
  if (prints_per_channel_scale(expected)) {
    EXPECT_NE(q->extra_repr().find("scale=["), std::string::npos) << c.name;
    return;
  }
  EXPECT_EQ(q->extra_repr(), expected) << c.name;
}

class TensorQuantizerReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(TensorQuantizerReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  auto q = make_quantizer(c);
  const double atol = c.atol();
  const double rtol = c.rtol();
  if (c.has("pre_quant_scale")) q->set_pre_quant_scale(c.tensor("pre_quant_scale"));
  if (c.has("clip_value_min")) {
    torch::NoGradGuard no_grad;
    q->clip->clip_value_min.copy_(c.tensor("clip_value_min"));
    q->clip->clip_value_max.copy_(c.tensor("clip_value_max"));
  }
  if (c.has("amax_buffer")) {
    EXPECT_TRUE(all_close(q->amax(), c.tensor("amax_buffer"), 0, 0));
  }
  expect_repr(q, c.meta["extra_repr_before_forward"].get<std::string>(), c);

  at::Tensor x = c.tensor("input").clone().requires_grad_(true);
  at::Tensor out = q(x);
  EXPECT_TRUE(all_close(out.detach(), c.tensor("expected_output"), atol, rtol)) << c.name;
  (out * c.tensor("grad_output")).sum().backward();
  EXPECT_TRUE(all_close(x.grad(), c.tensor("expected_grad_input"), atol, rtol)) << c.name;
  if (c.has("expected_grad_clip_value_min")) {
    EXPECT_TRUE(all_close(q->clip->clip_value_min.grad(), c.tensor("expected_grad_clip_value_min"),
                          atol, rtol));
    EXPECT_TRUE(all_close(q->clip->clip_value_max.grad(), c.tensor("expected_grad_clip_value_max"),
                          atol, rtol));
  }
  if (c.has("expected_scale")) {
    EXPECT_TRUE(all_close(q->scale().detach(), c.tensor("expected_scale"), atol, rtol));
  }
  expect_repr(q, c.meta["extra_repr_after_forward"].get<std::string>(), c);
}

class TensorQuantizerCalibrationFlow : public ::testing::TestWithParam<RefCase> {};

TEST_P(TensorQuantizerCalibrationFlow, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  auto q = make_quantizer(c);
  const auto& reprs = c.meta["extra_repr"];
  EXPECT_EQ(q->extra_repr(), reprs["initial"].get<std::string>());
  q->disable_quant();
  q->enable_calib();
  EXPECT_EQ(q->extra_repr(), reprs["calibrating"].get<std::string>());
  for (const char* b : {"batch0", "batch1", "batch2"}) {
    const at::Tensor batch = c.tensor(b);
    EXPECT_TRUE(torch::equal(q(batch), batch)) << "calibration must return the input";
  }
  const auto& load = c.meta["params"]["load_calib_amax"];
  calib::ComputeAmaxOptions options;
  if (!load.is_null()) {
    options.method(load["method"].get<std::string>());
    if (load.contains("percentile")) options.percentile(load["percentile"].get<double>());
  }
  q->load_calib_amax(options);
  q->enable_quant();
  q->disable_calib();
  EXPECT_EQ(q->extra_repr(), reprs["after_load"].get<std::string>());
  EXPECT_TRUE(all_close(q->amax(), c.tensor("expected_amax"), c.atol(), c.rtol()));
  EXPECT_TRUE(
      all_close(q(c.tensor("test_input")), c.tensor("expected_output"), c.atol(), c.rtol()));
}

std::vector<RefCase> g_cases(bool calibration_flow) {
  std::vector<RefCase> out;
  for (auto& c : testing::reference_cases("g_tensor_quantizer")) {
    if (c.has("test_input") == calibration_flow) out.push_back(c);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(G, TensorQuantizerReference, ::testing::ValuesIn(g_cases(false)),
                         [](const auto& info) { return testing::case_name(info.param); });
INSTANTIATE_TEST_SUITE_P(G, TensorQuantizerCalibrationFlow, ::testing::ValuesIn(g_cases(true)),
                         [](const auto& info) { return testing::case_name(info.param); });

TEST(TensorQuantizerReferenceCount, AllThirtyCasesRun) {
  EXPECT_EQ(g_cases(false).size() + g_cases(true).size(), 30u);
}

}  // namespace
}  // namespace torchquant
