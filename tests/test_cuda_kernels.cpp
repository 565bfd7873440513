// CUDA kernels against the CPU kernels, bit for bit: every layout path, dtype, the masks and
// gradients, E4M3 on every code and midpoint. Run where a GPU is visible (names end in _CUDA).

#include <c10/util/Float8_e4m3fn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reference.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

// Same dtype, shape and NaN positions, and equal values elsewhere.
::testing::AssertionResult same(const at::Tensor& a, const at::Tensor& b) {
  return testing::all_close(a, b, 0.0, 0.0);
}

TEST(TensorQuant_CUDA, LayoutsDtypesAndGradientsMatchCpu) {
  torch::manual_seed(7);
  const at::Tensor x = torch::randn({4, 6, 5, 70}) * 2;
  const std::vector<at::Tensor> amaxes = {
      torch::tensor(1.7f), x.abs().amax({1, 2, 3}, true), x.abs().amax({0, 2, 3}, true),
      x.abs().amax({0, 1, 2}, true), x.abs().amax({1, 3}, true)};
  for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (const auto& amax : amaxes) {
      for (bool narrow : {true, false}) {
        const at::Tensor xc = x.to(dtype);
        const at::Tensor cpu = fake_tensor_quant(xc, amax, 8, false, narrow);
        const at::Tensor gpu = fake_tensor_quant(xc.cuda(), amax.cuda(), 8, false, narrow).cpu();
        EXPECT_TRUE(same(gpu, cpu)) << dtype << " amax " << amax.sizes() << " narrow " << narrow;
        auto [qc, sc] = tensor_quant(xc, amax, 6, false, narrow);
        auto [qg, sg] = tensor_quant(xc.cuda(), amax.cuda(), 6, false, narrow);
        EXPECT_TRUE(same(qg.cpu(), qc));
        EXPECT_TRUE(same(sg.cpu(), sc));
      }
    }
  }
  const at::Tensor xg = x.cuda().requires_grad_(true);
  fake_tensor_quant(xg, torch::tensor(1.0f).cuda()).sum().backward();
  EXPECT_TRUE(torch::equal(xg.grad().cpu(), x.abs().le(1.0).to(at::kFloat)));
}

TEST(ScaledE4M3_CUDA, EveryCodeAndMidpointMatchesCpu) {
  std::vector<float> values;
  for (uint8_t code = 0; code < 127; ++code) {
    const float v = static_cast<float>(c10::Float8_e4m3fn(code, c10::Float8_e4m3fn::from_bits()));
    values.push_back(v);
    values.push_back(-v);
  }
  const size_t n = values.size();
  for (size_t i = 0; i + 2 < n; i += 2) values.push_back((values[i] + values[i + 2]) / 2);
  for (float v : {449.0f, 464.0f, 1e6f, INFINITY, -INFINITY, NAN, 1e-8f}) values.push_back(v);
  const at::Tensor x = torch::tensor(values);
  EXPECT_TRUE(same(scaled_e4m3(x.cuda()).cpu(), scaled_e4m3(x)));
  const at::Tensor amax = torch::tensor(3.0f);
  EXPECT_TRUE(same(scaled_e4m3(x.cuda(), amax.cuda()).cpu(), scaled_e4m3(x, amax)));
}

}  // namespace
}  // namespace torchquant
