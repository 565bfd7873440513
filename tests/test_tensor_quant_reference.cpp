// Conformance with pytorch_quantization 2.2.1: reference groups a (tensor_quant,
// fake_tensor_quant), b (straight-through gradients) and c (fake_affine_tensor_quant), bit for bit.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reference.h"
#include "test_helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::all_close;
using testing::RefCase;

struct QuantArgs {
  int64_t num_bits;
  bool is_unsigned;
  bool narrow_range;
};

QuantArgs args_of(const RefCase& c) {
  const auto& p = c.meta["params"];
  return {p["num_bits"].get<int64_t>(), p["unsigned"].get<bool>(), p["narrow_range"].get<bool>()};
}

bool is_fake(const RefCase& c) {
  return c.meta["function"].get<std::string>().find("fake_tensor_quant") != std::string::npos;
}

// Runs the case's function on `device`; returns outputs then, for tensor_quant, the scale, then,
// when the case has a grad_output, the input gradient.
std::vector<at::Tensor> run_case(const RefCase& c, const torch::Device& device) {
  const QuantArgs a = args_of(c);
  at::Tensor x = c.tensor("input").to(device).detach();
  const at::Tensor amax = c.tensor("amax").to(device);
  const bool grad = c.has("grad_output");
  if (grad) x.requires_grad_(true);
  std::vector<at::Tensor> out;
  if (is_fake(c)) {
    out.push_back(fake_tensor_quant(x, amax, a.num_bits, a.is_unsigned, a.narrow_range));
  } else {
    auto [q, scale] = tensor_quant(x, amax, a.num_bits, a.is_unsigned, a.narrow_range);
    out.push_back(q);
    out.push_back(scale);
  }
  if (grad) {
    out[0].backward(c.tensor("grad_output").to(device));
    out.push_back(x.grad());
  }
  for (auto& t : out) t = t.detach().cpu();
  return out;
}

std::vector<at::Tensor> expected_of(const RefCase& c) {
  std::vector<at::Tensor> e;
  if (is_fake(c)) {
    e.push_back(c.tensor(c.has("expected") ? "expected" : "expected_output"));
  } else {
    e.push_back(c.tensor("expected_outputs"));
    e.push_back(c.tensor("expected_scale"));
  }
  if (c.has("expected_grad_input")) e.push_back(c.tensor("expected_grad_input"));
  return e;
}

class TensorQuantRef : public ::testing::TestWithParam<RefCase> {};

// Fix: num_bits=1 signed leaves the range [0, 0] and upstream returns NaN (0/0); torchquant
// rejects it (docs/numerics.md).
bool rejected_on_purpose(const RefCase& c) {
  const QuantArgs a = args_of(c);
  return a.num_bits == 1 && !a.is_unsigned;
}

TEST_P(TensorQuantRef, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  if (rejected_on_purpose(c)) {
    if (c.has("expected")) {
      ASSERT_TRUE(c.tensor("expected").isnan().any().item<bool>());  // upstream: 0/0
    }
    testing::expect_error([&] { run_case(c, torch::kCPU); },
                          {"num_bits must be in [2, 16] for signed quantization, got 1"});
    return;
  }
  const auto actual = run_case(c, torch::kCPU);
  const auto expected = expected_of(c);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_TRUE(all_close(actual[i], expected[i], c.atol(), c.rtol())) << c.name << " output " << i;
  }
}

std::vector<RefCase> groups_ab() {
  auto a = testing::reference_cases("a_tensor_quant");
  auto b = testing::reference_cases("b_ste_grad");
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string param_name(const ::testing::TestParamInfo<RefCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Groups, TensorQuantRef, ::testing::ValuesIn(groups_ab()), param_name);

class AffineRef : public ::testing::TestWithParam<RefCase> {};

// One case of group c on `device` (the CPU's fused kernel; elsewhere upstream's composition of
// ATen ops): outputs and gradient against pytorch_quantization's.
void check_affine_case(const RefCase& c, at::Device device) {
  at::Tensor x = c.tensor("input").to(device).detach().requires_grad_(true);
  const int64_t num_bits = c.meta["params"]["num_bits"].get<int64_t>();
  at::Tensor y = fake_affine_tensor_quant(x, c.tensor("min_range").to(device),
                                          c.tensor("max_range").to(device), num_bits);
  y.backward(c.tensor("grad_output").to(device));
  EXPECT_TRUE(all_close(y.detach().cpu(), c.tensor("expected"), c.atol(), c.rtol())) << c.name;
  EXPECT_TRUE(all_close(x.grad().cpu(), c.tensor("expected_grad_input"), c.atol(), c.rtol()))
      << c.name;
}

TEST_P(AffineRef, MatchesPytorchQuantization) { check_affine_case(GetParam(), torch::kCPU); }

INSTANTIATE_TEST_SUITE_P(Group, AffineRef,
                         ::testing::ValuesIn(testing::reference_cases("c_affine")), param_name);

class AffineRef_CUDA : public ::testing::TestWithParam<RefCase> {};

TEST_P(AffineRef_CUDA, MatchesPytorchQuantization) { check_affine_case(GetParam(), torch::kCUDA); }

INSTANTIATE_TEST_SUITE_P(Group, AffineRef_CUDA,
                         ::testing::ValuesIn(testing::reference_cases("c_affine")), param_name);

// CUDA must agree with the CPU bit for bit on every case (runs where a GPU is present).
class TensorQuantRef_CUDA : public ::testing::TestWithParam<RefCase> {};

TEST_P(TensorQuantRef_CUDA, MatchesCpu) {
  const RefCase& c = GetParam();
  if (rejected_on_purpose(c)) return;
  const auto cpu = run_case(c, torch::kCPU);
  const auto cuda = run_case(c, torch::kCUDA);
  ASSERT_EQ(cpu.size(), cuda.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(all_close(cuda[i], cpu[i], 0.0, 0.0)) << c.name << " output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, TensorQuantRef_CUDA, ::testing::ValuesIn(groups_ab()), param_name);

}  // namespace
}  // namespace torchquant
