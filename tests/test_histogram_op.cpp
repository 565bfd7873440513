// torchquant::_abs_histogram (the calibrators' counting op): CPU against at::histc's rule, CUDA
// against CPU (tests named *_CUDA run where a GPU is visible).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"

namespace torchquant {
namespace {

TEST(AbsHistogramOp, CpuCountsAsHistcWithInt64) {
  torch::manual_seed(11);
  at::Tensor x = torch::randn({100003}) * 3;
  x.index_put_({torch::arange(0, 1000)}, 0.f);
  const double top = 5.0;
  for (int64_t bins : {1, 7, 2048, 5000}) {
    const at::Tensor ours = ops::abs_histogram(x, top, bins, false);
    EXPECT_EQ(ours.scalar_type(), torch::kLong);
    EXPECT_TRUE(torch::equal(ours, at::histc(x.abs(), bins, 0, top).to(torch::kLong))) << bins;
  }
  const at::Tensor skipped = ops::abs_histogram(x, top, 64, true);
  const at::Tensor kept = ops::abs_histogram(x, top, 64, false);
  EXPECT_EQ(kept[0].item<int64_t>() - skipped[0].item<int64_t>(), 1000);
  EXPECT_EQ(skipped.sum().item<int64_t>(),
            (x.abs() <= top).logical_and(x != 0).sum().item<int64_t>());
}

// The counting pass finds bins without dividing (a reciprocal and a recheck of the elements near a
// bin boundary): values a few ulps either side of every boundary must land where histc puts them,
// for many tops (a subnormal one takes the all-recheck path) and bin counts (above 2^16 bins the
// serial path; above 2^18 every element is rechecked).
TEST(AbsHistogramOp, ValuesAtBinBoundariesLandWhereHistcPutsThem) {
  for (double top : {5.3791237, 1.0, 0.1, 1e-30, 1e30, 1e-40}) {
    for (int64_t bins : {1, 7, 2048, 4096, 65536, 70001, 300000}) {
      std::vector<float> values;
      const int64_t step = std::max<int64_t>(1, bins / 3000);
      for (int64_t k = 0; k <= bins; k += step) {
        const auto edge = static_cast<float>(static_cast<double>(k) * top / bins);
        float lo = edge, hi = edge;
        for (int u = 0; u < 3; ++u) {
          lo = std::nextafter(lo, 0.f);
          hi = std::nextafter(hi, 2 * hi + 1);
          values.insert(values.end(), {lo, hi, -lo, -hi});
        }
        values.push_back(edge);
      }
      const at::Tensor x = torch::tensor(values);
      const auto t = static_cast<float>(top);
      EXPECT_TRUE(torch::equal(ops::abs_histogram(x, t, bins, false),
                               at::histc(x.abs(), bins, 0, t).to(torch::kLong)))
          << "top " << top << ", " << bins << " bins";
    }
  }
}

TEST(AbsHistogramOp, ErrorsNameTheOp) {
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 0.0, 8, false); },
                        {"torchquant::_abs_histogram", "top must be positive"});
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 1.0, 0, false); },
                        {"_abs_histogram", "num_bins"});
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}, torch::kInt), 1.0, 8, false); },
                        {"_abs_histogram", "floating-point"});
}

TEST(AbsHistogram_CUDA, MatchesCpu) {
  torch::manual_seed(12);
  const at::Tensor x = torch::randn({1 << 20}) * 2;
  for (int64_t bins : {16, 2048, 20000}) {  // shared-memory and global-atomic paths
    for (bool skip : {false, true}) {
      EXPECT_TRUE(torch::equal(ops::abs_histogram(x.cuda(), 6.0, bins, skip).cpu(),
                               ops::abs_histogram(x, 6.0, bins, skip)))
          << bins << " " << skip;
    }
  }
}

TEST(HistogramCalibrator_CUDA, SameHistogramAndAmaxAsCpu) {
  torch::manual_seed(13);
  calib::HistogramCalibrator cpu(8, c10::nullopt, false, 1024);
  calib::HistogramCalibrator gpu(8, c10::nullopt, false, 1024);
  for (float scale : {1.f, 3.f, 2.f}) {
    const at::Tensor x = torch::randn({4096, 64}) * scale;
    cpu.collect(x);
    gpu.collect(x.cuda());
  }
  EXPECT_EQ(gpu.histogram().counts, cpu.histogram().counts);
  EXPECT_EQ(gpu.histogram().edges, cpu.histogram().edges);
  for (const char* method : {"entropy", "mse", "percentile"}) {
    const at::Tensor amax = *gpu.compute_amax(method);
    EXPECT_TRUE(amax.is_cuda());
    EXPECT_TRUE(torch::equal(amax.cpu(), *cpu.compute_amax(method))) << method;
  }
}

}  // namespace
}  // namespace torchquant
