// torchquant::_abs_histogram (the calibrators' counting op): CPU against at::histc's rule, CUDA
// against CPU (tests named *_CUDA run where a GPU is visible).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "calib/bin_codes.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "util/cpu_isa.h"

namespace torchquant {
namespace {

using testing::runnable_isas;

TEST(CpuIsa, CapLowersTheDispatchAndRestoresIt) {
  const detail::CpuIsa before = detail::cpu_isa();  // the environment's cap applied
  {
    detail::ScopedCpuIsaCap scalar(detail::CpuIsa::kScalar);
    EXPECT_EQ(detail::cpu_isa(), detail::CpuIsa::kScalar);
    {
      detail::ScopedCpuIsaCap wide(detail::CpuIsa::kAvx512);
      // An inner cap replaces the outer one, but never raises past what the CPU runs or what
      // TORCHQUANT_CPU_ISA allows.
      EXPECT_EQ(detail::cpu_isa(), before);
    }
    EXPECT_EQ(detail::cpu_isa(), detail::CpuIsa::kScalar);
  }
  EXPECT_EQ(detail::cpu_isa(), before);
}

// TORCHQUANT_CPU_ISA caps the dispatch; ctest runs this with it unset (unit_tests), "scalar"
// (cpu_isa_scalar, with the histogram tests) and a bad value (cpu_isa_bad_environment).
TEST(CpuIsa, FollowsTheEnvironment) {
  const char* env = std::getenv("TORCHQUANT_CPU_ISA");
  const std::string value = env == nullptr ? "" : env;
  const detail::CpuIsa supported = detail::supported_cpu_isa();
  if (value.empty() || value == "avx512") {
    EXPECT_EQ(detail::cpu_isa(), supported);
  } else if (value == "avx2") {
    EXPECT_EQ(detail::cpu_isa(), std::min(supported, detail::CpuIsa::kAvx2));
  } else if (value == "scalar") {
    EXPECT_EQ(detail::cpu_isa(), detail::CpuIsa::kScalar);
  } else {
    testing::expect_error([] { detail::cpu_isa(); },
                          {"TORCHQUANT_CPU_ISA", "expected scalar, avx2 or avx512", value});
    testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 1.0, 8, false); },
                          {"TORCHQUANT_CPU_ISA", value});
  }
}

// Each instruction set gets its own version (a wrong dispatch would leave the vector versions
// untested), and the contract of what a version writes: an element on a bin boundary goes to
// `recheck` as its |x| bits, every code written is a bin or the "not counted" slot; the vector
// versions count exact zeros (either sign) themselves and drop what is not counted; the scalar
// one writes a code for every element.
TEST(AbsHistogramOp, EachInstructionSetHasItsVersion) {
  using calib::detail::BinCodes;
  EXPECT_EQ(calib::detail::bin_codes_for(detail::CpuIsa::kScalar),
            &calib::detail::bin_codes_scalar);
#if defined(__x86_64__)
  EXPECT_EQ(calib::detail::bin_codes_for(detail::CpuIsa::kAvx2), &calib::detail::bin_codes_avx2);
  EXPECT_EQ(calib::detail::bin_codes_for(detail::CpuIsa::kAvx512),
            &calib::detail::bin_codes_avx512);
#endif
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // With top 4 and 8 bins, 1 and 3 lie on bin boundaries (bins 2 and 6); -2.25 is in bin 4.
  const std::vector<float> x = {0.f, -0.f, 1.f, -2.25f, 9.f, nan, 0.f, 3.f};
  const calib::detail::BinRule rule(4.f, 8);
  std::vector<int32_t> out(x.size() + calib::detail::kCodeSlack);
  std::vector<uint32_t> recheck(x.size() + calib::detail::kCodeSlack);
  auto expect_rechecked = [&](const BinCodes& found) {
    ASSERT_EQ(found.rechecks, 2);
    EXPECT_EQ(recheck[0], calib::detail::abs_bits(1.f));
    EXPECT_EQ(recheck[1], calib::detail::abs_bits(3.f));
    EXPECT_EQ(rule.exact(recheck[0]), 2);
    EXPECT_EQ(rule.exact(recheck[1]), 6);
  };
  const BinCodes scalar =
      calib::detail::bin_codes_scalar(x.data(), 8, rule, false, out.data(), recheck.data());
  EXPECT_EQ(scalar.size, 8);
  EXPECT_EQ(scalar.first_bin, 0);
  EXPECT_EQ(out,
            (std::vector<int32_t>{
                0, 0, 8, 4, 8, 8, 0, 8, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));  // 8: not counted here (9, NaN) or rechecked
  expect_rechecked(scalar);
  for (detail::CpuIsa isa : runnable_isas()) {
    if (isa == detail::CpuIsa::kScalar) continue;
    SCOPED_TRACE("instruction set " + std::to_string(static_cast<int>(isa)));
    const BinCodes found =
        calib::detail::bin_codes_for(isa)(x.data(), 8, rule, false, out.data(), recheck.data());
    EXPECT_EQ(found.first_bin, 3);  // 0, -0, 0
    ASSERT_EQ(found.size, 1);
    EXPECT_EQ(out[0], 4);
    expect_rechecked(found);
    const BinCodes skipped =
        calib::detail::bin_codes_for(isa)(x.data(), 8, rule, true, out.data(), recheck.data());
    EXPECT_EQ(skipped.first_bin, 0);
    EXPECT_EQ(skipped.size, 1);
    expect_rechecked(skipped);
  }
}

// |x| == top lies on the boundary q = num_bins but is always in the last bin: no version sets it
// aside for a recheck (a clipped activation has many such values; a constant tensor all).
TEST(AbsHistogramOp, ValuesAtTheTopNeedNoRecheck) {
  const float below = std::nextafter(4.f, 0.f);
  const std::vector<float> x = {4.f, -4.f, 4.f, below, -4.f, 4.f, 4.f, -below, 4.f, 4.f, -4.f};
  const auto n = static_cast<int64_t>(x.size());
  for (int64_t bins : {1, 7, 8, 2048}) {
    const calib::detail::BinRule rule(4.f, bins);
    const auto last = static_cast<int32_t>(bins - 1);
    std::vector<int32_t> out(x.size() + calib::detail::kCodeSlack);
    std::vector<uint32_t> recheck(x.size() + calib::detail::kCodeSlack);
    for (detail::CpuIsa isa : runnable_isas()) {
      SCOPED_TRACE(std::to_string(bins) + " bins, instruction set " +
                   std::to_string(static_cast<int>(isa)));
      const calib::detail::BinCodes found =
          calib::detail::bin_codes_for(isa)(x.data(), n, rule, false, out.data(), recheck.data());
      EXPECT_EQ(found.rechecks, 0);
      ASSERT_EQ(found.size, n);
      EXPECT_TRUE(std::all_of(out.begin(), out.begin() + n, [&](int32_t c) { return c == last; }));
      if (calib::detail::CountFn count = calib::detail::count_for(isa)) {
        std::vector<int32_t> counts(bins + calib::detail::kUncountedSlots, 0);
        EXPECT_EQ(count(x.data(), n, rule, false, counts.data(), recheck.data()).rechecks, 0);
        EXPECT_EQ(counts[last], n);
      }
    }
  }
}

// The counting version (AVX2 only): the bins of the elements a BinCodesFn would write as codes are
// incremented, every other lane k increments "not counted" slot num_bins + k; zeros in first_bin,
// boundary values in recheck as in bin_codes; `size` counts the bins incremented and `repeats` the
// lanes whose slot is that of the first lane of their 8.
TEST(AbsHistogramOp, CountingVersionIncrementsWhatCodesWouldWrite) {
  using calib::detail::BinCodes;
  EXPECT_EQ(calib::detail::count_for(detail::CpuIsa::kScalar), nullptr);
#if defined(__x86_64__)
  EXPECT_EQ(calib::detail::count_for(detail::CpuIsa::kAvx2), &calib::detail::count_avx2);
  EXPECT_EQ(calib::detail::count_for(detail::CpuIsa::kAvx512), nullptr);
  if (detail::supported_cpu_isa() < detail::CpuIsa::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {0.f, -0.f, 1.f, -2.25f, 9.f, nan, 0.f, 3.f};
  const calib::detail::BinRule rule(4.f, 8);
  std::vector<int32_t> counts(8 + calib::detail::kUncountedSlots, 0);
  std::vector<uint32_t> recheck(x.size() + calib::detail::kCodeSlack);
  const BinCodes found =
      calib::detail::count_avx2(x.data(), 8, rule, false, counts.data(), recheck.data());
  EXPECT_EQ(found.first_bin, 3);
  EXPECT_EQ(found.size, 1);
  EXPECT_EQ(found.repeats, 0);
  ASSERT_EQ(found.rechecks, 2);
  EXPECT_EQ(recheck[0], calib::detail::abs_bits(1.f));
  EXPECT_EQ(recheck[1], calib::detail::abs_bits(3.f));
  EXPECT_EQ(found.max_bits, calib::detail::abs_bits(nan));
  // Bin 4 once (-2.25); lane 3's "not counted" slot never.
  EXPECT_EQ(counts, (std::vector<int32_t>{0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1}));
  // Nine elements of one bin: 7 repeats in the first 8 (the ninth is a step of its own), the tail
  // read masked.
  std::fill(counts.begin(), counts.end(), 0);
  const std::vector<float> same(9, 2.25f);
  const BinCodes repeated =
      calib::detail::count_avx2(same.data(), 9, rule, true, counts.data(), recheck.data());
  EXPECT_EQ(repeated.size, 9);
  EXPECT_EQ(repeated.repeats, 7);
  EXPECT_EQ(repeated.rechecks, 0);
  EXPECT_EQ(counts[4], 9);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), 0), 16);  // 7 of the tail's lanes
#endif
}

// The pass counts a block by the counting version where the CPU has one, but the blocks after one
// with many zeros or repeated bins by codes (histogram_kernel.cpp): runs of such data between
// gaussian data switch it both ways; the counts stay histc's.
TEST(AbsHistogramOp, SwitchingBetweenCountingAndCodesCountsAsHistc) {
  torch::manual_seed(15);
  const at::Tensor gaussian = torch::randn({40000});
  const at::Tensor peaked = torch::where(torch::rand({40000}) < 0.8, 0.3, gaussian);
  const at::Tensor x = torch::cat({gaussian, torch::relu(gaussian), gaussian, peaked, gaussian,
                                   torch::full({20000}, -1.7f), gaussian.slice(0, 0, 3333)});
  for (bool skip : {false, true}) {
    at::Tensor expected = at::histc(x.abs(), 2048, 0, 4).to(torch::kLong);
    if (skip) expected[0] -= (x == 0).sum();
    for (detail::CpuIsa isa : runnable_isas()) {
      detail::ScopedCpuIsaCap cap(isa);
      for (int threads : {1, 2}) {
        const at::Tensor ours =
            testing::with_threads(threads, [&] { return ops::abs_histogram(x, 4.0, 2048, skip); });
        EXPECT_TRUE(torch::equal(ours, expected))
            << "skip_zeros " << skip << ", instruction set " << static_cast<int>(isa) << ", "
            << threads << " threads";
      }
    }
  }
}

TEST(AbsHistogramOp, CpuCountsAsHistcWithInt64) {
  torch::manual_seed(11);
  at::Tensor x = torch::randn({100003}) * 3;
  x.index_put_({torch::arange(0, 1000)}, 0.f);
  const double top = 5.0;
  for (detail::CpuIsa isa : runnable_isas()) {
    SCOPED_TRACE("instruction set " + std::to_string(static_cast<int>(isa)));
    detail::ScopedCpuIsaCap cap(isa);
    // Each thread keeps its sub-histograms between calls up to 8192 bins (above, they are
    // temporary): every bin count again after others, on 1 and 2 threads.
    for (int threads : {1, 2}) {
      for (int64_t bins : {1, 7, 2048, 5000, 9000, 2048, 7, 8192}) {
        const at::Tensor ours =
            testing::with_threads(threads, [&] { return ops::abs_histogram(x, top, bins, false); });
        EXPECT_EQ(ours.scalar_type(), torch::kLong);
        EXPECT_TRUE(torch::equal(ours, at::histc(x.abs(), bins, 0, top).to(torch::kLong)))
            << bins << " bins, " << threads << " threads";
      }
    }
    const at::Tensor skipped = ops::abs_histogram(x, top, 64, true);
    const at::Tensor kept = ops::abs_histogram(x, top, 64, false);
    EXPECT_EQ(kept[0].item<int64_t>() - skipped[0].item<int64_t>(), 1000);
    EXPECT_EQ(skipped.sum().item<int64_t>(),
              (x.abs() <= top).logical_and(x != 0).sum().item<int64_t>());
  }
}

// Activations after a ReLU: half exact zeros, which the AVX-512 version counts with a popcount
// instead of writing them out; every length up to three vectors (the masked tail) and both
// skip_zeros settings, with ±0, NaN, ±Inf, values above the range, a subnormal and bin 0's upper
// edge mixed in.
TEST(AbsHistogramOp, ZerosTailsAndDroppedValuesCountAlikeInEveryVersion) {
  torch::manual_seed(14);
  const at::Tensor pool = torch::relu(torch::randn({64})) * 2;
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor with_edges = torch::cat(
      {pool, torch::tensor({0.f, -0.f, 9.f, -7.f, 4.f / 2048, std::nextafter(4.f / 2048, 0.f), 4.f,
                            std::numeric_limits<float>::quiet_NaN(), inf, -inf, 1e-40f})});
  for (int64_t n = 0; n <= 48; ++n) {
    const at::Tensor x = with_edges.index({torch::randperm(with_edges.numel()).slice(0, 0, n)});
    for (bool skip : {false, true}) {
      // NaN is never counted: histc gets a value above the range in its place.
      at::Tensor expected = at::histc(x.abs().nan_to_num(5.f), 2048, 0, 4).to(torch::kLong);
      if (skip) expected[0] -= (x == 0).sum();
      for (detail::CpuIsa isa : runnable_isas()) {
        detail::ScopedCpuIsaCap cap(isa);
        EXPECT_TRUE(torch::equal(ops::abs_histogram(x, 4.0, 2048, skip), expected))
            << n << " elements, skip_zeros " << skip << ", instruction set "
            << static_cast<int>(isa);
      }
    }
  }
}

// The counting pass finds bins without dividing (a reciprocal and a recheck of the elements near a
// bin boundary): values a few ulps either side of every boundary must land where histc puts them,
// for many tops (a subnormal one takes the all-recheck path) and bin counts (above 2^16 bins the
// serial path; above 2^18 every element is rechecked), with every instruction set's version.
TEST(AbsHistogramOp, ValuesAtBinBoundariesLandWhereHistcPutsThem) {
  for (double top : {5.3791237, 1.0, 0.1, 1e-30, 1e30, 1e-40, 3e38}) {
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
      // Where |x| * bins overflows float32 (top 3e38: also the every-element-rechecked path of a
      // subnormal 1 / top), the rule puts the overflowing values in the last bin
      // (docs/bad_inputs.md); there every version must agree with the scalar one instead.
      const bool overflows = top * static_cast<double>(bins) > std::numeric_limits<float>::max();
      at::Tensor expected;
      if (overflows) {
        detail::ScopedCpuIsaCap scalar(detail::CpuIsa::kScalar);
        expected = ops::abs_histogram(x, t, bins, false);
      } else {
        expected = at::histc(x.abs(), bins, 0, t).to(torch::kLong);
      }
      for (detail::CpuIsa isa : runnable_isas()) {
        detail::ScopedCpuIsaCap cap(isa);
        EXPECT_TRUE(torch::equal(ops::abs_histogram(x, t, bins, false), expected))
            << "top " << top << ", " << bins << " bins, instruction set " << static_cast<int>(isa);
      }
    }
  }
}

TEST(AbsHistogramOp, ErrorsNameTheOp) {
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 0.0, 8, false); },
                        {"torchquant::_abs_histogram", "top must be positive"});
  // Counting is in float32: a top that rounds to 0 or inf there is refused too.
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 1e-46, 8, false); },
                        {"_abs_histogram", "positive and finite in float32", "1e-46"});
  testing::expect_error([] { ops::abs_histogram(torch::ones({3}), 1e39, 8, false); },
                        {"_abs_histogram", "positive and finite in float32"});
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
