// The fast max |x| reductions behind dynamic amax and MaxCalibrator equal ATen's infinity norm,
// bit for bit, including NaN, Inf, empty rows and every non-fast-path layout, with every version
// of the kernel the CPU runs.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "calib/abs_max.h"
#include "calib/abs_max_bits.h"
#include "test_helpers.h"

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
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    for (const auto& [name, x] : cases()) {
      expect_identical(calib::detail::abs_max_all(x), at::linalg_vector_norm(x, kInf),
                       name + ", instruction set " + std::to_string(static_cast<int>(isa)));
    }
  }
}

TEST(AbsMax, PerRowEqualsTheInfinityNormOverTheOtherDims) {
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    for (const auto& [name, x] : cases()) {
      expect_identical(calib::detail::abs_max_per_row(x), norm_rows(x),
                       name + ", instruction set " + std::to_string(static_cast<int>(isa)));
    }
  }
}

// The vector versions' main loops take 32 or 64 floats a step and the rest in a tail: the largest
// |x| (or a NaN, an Inf, a subnormal) at every position of every length up to 200 is found (the
// sanitizer build also checks that no version reads past the end).
TEST(AbsMax, EveryVersionFindsTheMaxAtEveryPosition) {
  using calib::detail::abs_max_bits_for;
  const float specials[] = {-7.5f, std::numeric_limits<float>::quiet_NaN(), -INFINITY, 1e-40f};
  std::vector<float> x(200);
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    const calib::detail::AbsMaxBitsFn fn = abs_max_bits_for(isa);
    EXPECT_EQ(fn(x.data(), 0), 0u);
    for (float special : specials) {
      uint32_t want;
      std::memcpy(&want, &special, sizeof(want));
      want &= 0x7fffffffu;
      for (int64_t n = 1; n <= static_cast<int64_t>(x.size()); ++n) {
        for (int64_t at = 0; at < n; ++at) {
          for (int64_t i = 0; i < n; ++i) x[i] = (i % 7 - 3) * (special == 1e-40f ? 1e-41f : 1.f);
          x[at] = special;
          ASSERT_EQ(fn(x.data(), n), want) << "isa " << static_cast<int>(isa) << ", n " << n
                                           << ", at " << at << ", value " << special;
        }
      }
    }
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
