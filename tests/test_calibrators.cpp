// Calibrators beyond the reference cases: growth, zeros, errors, merge, per channel, threads.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"

namespace torchquant {
namespace {

using calib::ComputeAmaxOptions;
using calib::HistogramCalibrator;
using calib::MaxCalibrator;
using testing::expect_error;

int64_t total(const calib::HistogramState& h) {
  int64_t sum = h.pending_zeros;
  for (int64_t c : h.counts) sum += c;
  return sum;
}

TEST(HistogramCalibrator, GrowthKeepsOldCountsAndWidth) {
  torch::manual_seed(0);
  HistogramCalibrator calib(8, c10::nullopt, false, 256);
  int64_t seen = 0;
  std::vector<int64_t> previous;
  for (float scale : {1.f, 2.f, 4.f, 3.f}) {
    const at::Tensor batch = torch::randn({5000}) * scale;
    calib.collect(batch);
    seen += batch.numel();
    const auto& h = calib.histogram();
    EXPECT_EQ(total(h), seen);
    EXPECT_GE(h.counts.size(), previous.size());
    for (size_t i = 0; i < previous.size(); ++i) EXPECT_GE(h.counts[i], previous[i]);
    EXPECT_LE(h.edges.size(), h.counts.size() + 2);
    EXPECT_GE(h.edges.back(), batch.abs().max().item<float>() * (1 - 1e-6f));
    previous = h.counts;
  }
}

// collect's fast path (a contiguous float32 CPU batch within the known range) and its general
// path (any layout or dtype, growth, errors) build the same histograms: one calibrator is fed
// contiguous batches, the other the same values through a transposed view. The sequence has
// batches in range, half zeros, all zeros, a growing max, a NaN (refused by both, state kept).
TEST(HistogramCalibrator, FastPathEqualsGeneralPath) {
  torch::manual_seed(31);
  for (bool skip_zeros : {false, true}) {
    HistogramCalibrator fast(8, c10::nullopt, false, 512, skip_zeros);
    HistogramCalibrator general(8, c10::nullopt, false, 512, skip_zeros);
    const std::vector<at::Tensor> batches = {
        torch::randn({64, 50}), torch::randn({64, 50}) * 0.5, torch::relu(torch::randn({64, 50})),
        torch::zeros({64, 50}), torch::randn({64, 50}) * 3,   torch::full({64, 50}, NAN),
        torch::randn({64, 50})};
    int64_t counted = 0;
    for (const at::Tensor& batch : batches) {
      const bool bad = torch::isnan(batch).any().item<bool>();
      if (!bad) counted += skip_zeros ? batch.ne(0).sum().item<int64_t>() : batch.numel();
      for (auto* calib : {&fast, &general}) {
        const at::Tensor input =
            calib == &fast ? batch : batch.t().contiguous().t();  // same values, not contiguous
        ASSERT_EQ(input.is_contiguous(), calib == &fast);
        if (bad) {
          expect_error([&] { calib->collect(input); }, {"NaN or Inf"});
        } else {
          calib->collect(input);
        }
      }
      ASSERT_EQ(fast.histogram().counts, general.histogram().counts);
      ASSERT_EQ(fast.histogram().edges, general.histogram().edges);
    }
    EXPECT_EQ(total(fast.histogram()), counted) << "every value counted once";
    EXPECT_EQ(fast.compute_amax(ComputeAmaxOptions("entropy"))->item<float>(),
              general.compute_amax(ComputeAmaxOptions("entropy"))->item<float>());
  }
}

// Deliberate difference (docs/calibration.md): upstream's float32 arange can end below the new
// max, and its histc then drops the largest values. These maxima were found by running upstream's
// rule in torch: arange(0, max + width, width) ends at 14998.568359375 (one edge short of
// 1146664.375 in the second case). We keep the other edges and make the grid reach the max.
TEST(HistogramCalibrator, GrowthCountsTheMaxWhereUpstreamsArangeFallsShort) {
  struct Case {
    int64_t bins;
    float max;
  };
  for (const Case& c : {Case{2048, 14998.5693359375f}, Case{16, 1146664.375f}}) {
    HistogramCalibrator calib(8, c10::nullopt, false, c.bins);
    calib.collect(torch::tensor({3.f}));
    const auto& first = calib.histogram();
    const float width = first.edges[1] - first.edges[0];
    calib.collect(torch::tensor({c.max, 1.f}));
    const auto& h = calib.histogram();
    EXPECT_EQ(total(h), 3) << "every value counted, the max included";
    EXPECT_EQ(h.counts.back(), 1) << "the max lands in the last bin";
    EXPECT_EQ(h.edges.back(), c.max);
    ASSERT_GE(h.edges.size(), h.counts.size() + 1);
    const at::Tensor upstream = torch::arange(0, c.max + width, width, torch::kFloat);
    EXPECT_LT(upstream[-1].item<float>(), c.max) << "the case no longer shows upstream's shortfall";
    const float* up = upstream.data_ptr<float>();
    const int64_t kept = std::min<int64_t>(upstream.numel() - 1, h.edges.size() - 1);
    EXPECT_TRUE(std::equal(up, up + kept, h.edges.begin())) << "the other edges are upstream's";
  }
}

// Found by fuzz_histogram: growing to a max within one bin of FLT_MAX made max + width inf and
// ATen's arange refused it ("unsupported range: 0 -> inf", as upstream fails); now the grid stops
// at FLT_MAX and its last edge is the max.
TEST(HistogramCalibrator, GrowthNextToFloatMax) {
  HistogramCalibrator calib(8, c10::nullopt, false, 512);
  calib.collect(torch::tensor({3.3e38f}));
  const float width = calib.histogram().edges[1];
  const float top = std::numeric_limits<float>::max();
  ASSERT_TRUE(std::isinf(top + width));
  calib.collect(torch::tensor({-top, 1.f}));
  const auto& h = calib.histogram();
  EXPECT_EQ(total(h), 3);
  EXPECT_EQ(h.counts.back(), 1);
  EXPECT_EQ(h.edges.back(), top);
  EXPECT_GE(h.edges.size(), h.counts.size() + 1);
  EXPECT_TRUE(calib.compute_amax("percentile")->isfinite().all().item<bool>());
}

TEST(HistogramCalibrator, SkipZerosIgnoresExactZeros) {
  const at::Tensor x = torch::cat({torch::zeros({100}), torch::rand({50}) + 0.5});
  HistogramCalibrator keep(8, c10::nullopt, false, 64, false);
  HistogramCalibrator skip(8, c10::nullopt, false, 64, true);
  keep.collect(x);
  skip.collect(x);
  EXPECT_EQ(total(keep.histogram()), 150);
  EXPECT_EQ(total(skip.histogram()), 50);
  EXPECT_EQ(keep.histogram().counts[0] - skip.histogram().counts[0], 100);
}

TEST(HistogramCalibrator, AllZeroAndEmptyBatchesAreHandled) {
  HistogramCalibrator calib(8, c10::nullopt, false, 16);
  calib.collect(torch::zeros({0}));
  EXPECT_FALSE(calib.compute_amax("percentile").has_value()) << "an empty batch is not data";
  calib.collect(torch::zeros({10}));  // upstream crashes here
  EXPECT_EQ(calib.compute_amax("entropy")->item<float>(), 0.f);
  calib.collect(torch::full({6}, 2.f));
  const auto& h = calib.histogram();
  EXPECT_EQ(h.counts.front(), 10) << "the zeros seen first land in the first bin";
  EXPECT_EQ(h.counts.back(), 6);
  EXPECT_EQ(total(h), 16);
}

TEST(Calibrators, NanOrInfIsAnErrorThatKeepsState) {
  for (float bad : {NAN, INFINITY}) {
    MaxCalibrator max_calib;
    HistogramCalibrator hist_calib;
    const at::Tensor good = torch::randn({100});
    max_calib.collect(good);
    hist_calib.collect(good);
    at::Tensor poisoned = torch::randn({100});
    poisoned[3] = bad;
    expect_error([&] { max_calib.collect(poisoned); }, {"MaxCalibrator::collect", "NaN or Inf"});
    expect_error([&] { hist_calib.collect(poisoned); },
                 {"HistogramCalibrator::collect", "NaN or Inf"});
    expect_error([&] { max_calib.collect(poisoned.to(at::kDouble)); },
                 {"MaxCalibrator::collect", "NaN or Inf"});
    EXPECT_EQ(max_calib.compute_amax()->item<float>(), good.abs().max().item<float>());
    EXPECT_EQ(total(hist_calib.histogram()), 100);
    // Per channel (a weight's amax per output channel): the bad value's row names it.
    MaxCalibrator per_row(8, std::vector<int64_t>{0});
    per_row.collect(good.reshape({4, 25}));
    expect_error(
        [&] {
          per_row.collect(poisoned.reshape({4, 25}));
        },
        {"MaxCalibrator::collect", "NaN or Inf"});
    EXPECT_TRUE(torch::equal(*per_row.compute_amax(), good.reshape({4, 25}).abs().amax(1, true)));
  }
}

TEST(Calibrators, BadArgumentsAreClearErrors) {
  HistogramCalibrator calib;
  calib.collect(torch::rand({100}));
  expect_error([&] { calib.compute_amax("kl"); }, {"unknown method \"kl\""});
  expect_error([&] { calib.compute_amax(ComputeAmaxOptions("percentile").percentile(-1)); },
               {"[0, 100]", "-1"});
  expect_error([&] { calib.compute_amax(ComputeAmaxOptions("mse").stride(0)); }, {"stride"});
  expect_error([] { HistogramCalibrator(8, c10::nullopt, false, 0); }, {"num_bins", "0"});
  HistogramCalibrator one_bit(1);
  one_bit.collect(torch::rand({100}));
  expect_error([&] { one_bit.compute_amax("mse"); },
               {"HistogramCalibrator::compute_amax", "mse_amax", "num_bits"});
  expect_error([&] { calib.collect(torch::ones({3}, torch::kInt)); }, {"floating-point"});
  MaxCalibrator axis_calib(8, std::vector<int64_t>{2});
  expect_error([&] { axis_calib.collect(torch::rand({2, 2})); }, {"axis 2", "out of range"});
  MaxCalibrator max_calib;
  expect_error([&] { max_calib.merge(calib); }, {"cannot merge a HistogramCalibrator"});
}

TEST(Calibrators, ResetForgetsEverything) {
  MaxCalibrator max_calib(8, c10::nullopt, false, true);
  HistogramCalibrator hist_calib;
  max_calib.collect(torch::rand({10}));
  hist_calib.collect(torch::rand({10}));
  max_calib.reset();
  hist_calib.reset();
  EXPECT_FALSE(max_calib.compute_amax().has_value());
  EXPECT_TRUE(max_calib.amaxs().empty());
  EXPECT_FALSE(hist_calib.compute_amax("mse").has_value());
  max_calib.collect(torch::full({2}, 3.f));  // collect after reset starts afresh
  EXPECT_EQ(max_calib.compute_amax()->item<float>(), 3.f);
}

TEST(Calibrators, PrintLikeUpstream) {
  EXPECT_EQ(MaxCalibrator(8, std::vector<int64_t>{0}).str(),
            "MaxCalibrator(num_bits=8, axis=(0,), unsigned=False, track_amax=False)");
  EXPECT_EQ(HistogramCalibrator(4, c10::nullopt, true).str(),
            "HistogramCalibrator(num_bits=4, axis=None, unsigned=True, num_bins=2048, "
            "skip_zeros=False)");
}

TEST(Calibrators, MergeOfASplitEqualsCalibratingOnEverything) {
  torch::manual_seed(1);
  // Both halves start with the same first batch range, so their grids share the bin width.
  at::Tensor first = torch::randn({4000});
  first[0] = 4.f;
  const at::Tensor first_b = torch::randn({4000}).clamp(-3.9, 3.9);
  at::Tensor first_b_max = first_b.clone();
  first_b_max[0] = 4.f;
  at::Tensor later_a = torch::randn({4000}) * 2;
  at::Tensor later_b = torch::randn({4000}) * 3;
  later_a[0] = 10.f;  // each later batch grows the grid, b's beyond a's
  later_b[0] = 20.f;

  HistogramCalibrator all(8, c10::nullopt, false, 512);
  HistogramCalibrator a(8, c10::nullopt, false, 512);
  HistogramCalibrator b(8, c10::nullopt, false, 512);
  MaxCalibrator max_all, max_a, max_b;
  for (const auto& x : {first, later_a}) {
    a.collect(x);
    max_a.collect(x);
  }
  for (const auto& x : {first_b_max, later_b}) {
    b.collect(x);
    max_b.collect(x);
  }
  for (const auto& x : {first, first_b_max, later_a, later_b}) {
    all.collect(x);
    max_all.collect(x);
  }
  a.merge(b);
  max_a.merge(max_b);
  EXPECT_EQ(a.histogram().counts, all.histogram().counts);
  EXPECT_EQ(a.histogram().edges, all.histogram().edges);
  EXPECT_TRUE(torch::equal(*max_a.compute_amax(), *max_all.compute_amax()));
  for (const char* method : {"entropy", "mse", "percentile"}) {
    EXPECT_TRUE(torch::equal(*a.compute_amax(method), *all.compute_amax(method))) << method;
  }
}

TEST(Calibrators, MergeOfDifferentGridsKeepsEveryCount) {
  HistogramCalibrator a(8, c10::nullopt, false, 100);
  HistogramCalibrator b(8, c10::nullopt, false, 100);
  a.collect(torch::rand({1000}));
  b.collect(torch::rand({700}) * 5);
  a.merge(b);
  EXPECT_EQ(total(a.histogram()), 1700);
  EXPECT_GE(a.histogram().edges.back(), 4.9f);
}

TEST(HistogramCalibrator, PerChannelEqualsPerTensorOnEachChannel) {
  torch::manual_seed(2);
  HistogramCalibrator per_channel(8, std::vector<int64_t>{1}, false, 256);
  std::vector<HistogramCalibrator> singles(3, HistogramCalibrator(8, c10::nullopt, false, 256));
  for (int b = 0; b < 3; ++b) {
    const at::Tensor x = torch::randn({8, 3, 6}) * torch::tensor({1.f, 2.f, 0.5f}).view({1, 3, 1}) *
                         (1.f + static_cast<float>(b));
    per_channel.collect(x);
    for (int64_t c = 0; c < 3; ++c) singles[static_cast<size_t>(c)].collect(x.select(1, c));
  }
  for (const char* method : {"entropy", "mse", "percentile"}) {
    const at::Tensor amax = *per_channel.compute_amax(method);
    ASSERT_EQ(amax.sizes(), torch::IntArrayRef({1, 3, 1})) << method;
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(amax.view({3})[c].item<float>(),
                singles[static_cast<size_t>(c)].compute_amax(method)->item<float>())
          << method << " channel " << c;
    }
  }
  expect_error([&] { per_channel.collect(torch::randn({8, 4, 6})); }, {"amax shape changed!"});
}

TEST(Calibrators, IdenticalWithOneAndTwoThreads) {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({1 << 18}) * 3;
  auto run = [&] {
    HistogramCalibrator hist;
    MaxCalibrator max_calib(8, std::vector<int64_t>{0});
    hist.collect(x);
    max_calib.collect(x.view({64, -1}));
    return torch::cat({torch::tensor(hist.histogram().counts).to(torch::kFloat),
                       hist.compute_amax("entropy")->view({1}),
                       max_calib.compute_amax()->view({-1})});
  };
  const at::Tensor one = testing::with_threads(1, run);
  const at::Tensor two = testing::with_threads(2, run);
  EXPECT_TRUE(torch::equal(one, two));
}

}  // namespace
}  // namespace torchquant
