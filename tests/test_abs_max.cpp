// The fast max |x| reductions behind dynamic amax and MaxCalibrator equal ATen's infinity norm,
// bit for bit, including NaN, Inf, empty rows and every non-fast-path layout.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "calib/abs_max.h"

namespace torchquant {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void expect_identical(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  EXPECT_TRUE(got.equal(want) ||
              (got.isnan().equal(want.isnan()) && got.nan_to_num(0).equal(want.nan_to_num(0))))
      << what << "\n"
      << got << "\n"
      << want;
}

at::Tensor norm_rows(const at::Tensor& x) {
  std::vector<int64_t> dims(static_cast<size_t>(x.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  return at::linalg_vector_norm(x, kInf, dims, true);
}

std::vector<std::pair<std::string, at::Tensor>> cases() {
  torch::manual_seed(0);
  at::Tensor big = torch::randn({64, 3, 33, 17});
  at::Tensor with_nan = big.clone();
  with_nan[5][1][2][3] = NAN;
  at::Tensor with_inf = big.clone();
  with_inf[63][2][32][16] = -INFINITY;
  at::Tensor both = with_inf.clone();
  both[0][0][0][0] = NAN;
  return {{"gaussian", big},
          {"nan", with_nan},
          {"-inf", with_inf},
          {"nan and inf", both},
          {"zeros", torch::zeros({4, 5})},
          {"negative zero", torch::full({3, 2}, -0.0)},
          {"transposed (not contiguous)", big.transpose(0, 1)},
          {"channels last", big.contiguous(at::MemoryFormat::ChannelsLast)},
          {"double", big.to(at::kDouble)},
          {"half", big.to(at::kHalf)},
          {"one row", torch::randn({1, 1000})},
          {"one column", torch::randn({1000, 1})}};
}

TEST(AbsMax, AllEqualsTheInfinityNorm) {
  for (const auto& [name, x] : cases()) {
    expect_identical(calib::detail::abs_max_all(x), at::linalg_vector_norm(x, kInf), name);
  }
}

TEST(AbsMax, PerRowEqualsTheInfinityNormOverTheOtherDims) {
  for (const auto& [name, x] : cases()) {
    expect_identical(calib::detail::abs_max_per_row(x), norm_rows(x), name);
  }
}

TEST(AbsMax, ReducesAllButFirst) {
  const at::Tensor x = torch::zeros({2, 3, 4});
  EXPECT_TRUE(calib::detail::reduces_all_but_first(x, {1, 2}));
  EXPECT_FALSE(calib::detail::reduces_all_but_first(x, {0, 1}));
  EXPECT_FALSE(calib::detail::reduces_all_but_first(x, {1}));
  EXPECT_FALSE(calib::detail::reduces_all_but_first(torch::zeros({5}), {}));
}

}  // namespace
}  // namespace torchquant
