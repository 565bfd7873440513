#pragma once
// Loads the reference vectors produced by pytorch_quantization 2.2.1 (shared/reference).

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace torchquant {
namespace testing {

/// One reference case: its manifest entry and its tensors by role.
struct RefCase {
  std::string name;
  nlohmann::json meta;
  /// The tensor of `role` (e.g. "input", "expected"); fails the test if absent.
  at::Tensor tensor(const std::string& role) const;
  bool has(const std::string& role) const;
  double atol() const { return meta["tolerance"]["atol"].get<double>(); }
  double rtol() const { return meta["tolerance"]["rtol"].get<double>(); }
};

/// Every case of `group` (e.g. "a_tensor_quant"), in manifest order.
std::vector<RefCase> reference_cases(const std::string& group);

/// Name usable as a gtest parameter name.
std::string case_name(const RefCase& c);

/// Asserts same dtype and shape, NaN where expected is NaN, and |a-e| <= atol + rtol*|e| elsewhere.
::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected,
                                     double atol, double rtol);

}  // namespace testing
}  // namespace torchquant
