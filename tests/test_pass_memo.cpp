// Calibrators fed the same tensor count it once (calib/pass_memo.h), and only while its values
// are the ones counted: same storage, data, size, version and bin rule.

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "calib/pass_memo.h"
#include "torchquant/calib/histogram_calibrator.h"

namespace torchquant {
namespace calib {
namespace {

using detail::PassMemo;

at::Tensor activation(int64_t seed) {
  at::manual_seed(seed);
  return at::relu(at::randn({8, 16, 32, 32}));
}

// Calibrators that saw the same first batch: the same range, so their next passes share a rule.
std::vector<HistogramCalibrator> calibrators(int count, const at::Tensor& first,
                                             bool skip_zeros = false) {
  std::vector<HistogramCalibrator> cals;
  for (int i = 0; i < count; ++i) {
    cals.emplace_back(8, c10::nullopt, false, 2048, skip_zeros);
    cals.back().collect(first.clone());  // a copy: not remembered
  }
  return cals;
}

int64_t hits() { return PassMemo::this_thread().hits(); }

TEST(PassMemo, CalibratorsOnOneTensorCountItOnce) {
  const at::Tensor x = activation(1);
  auto cals = calibrators(4, x * 1.5);  // cals[3]: the first batch only
  const int64_t before = hits();
  cals[0].collect(x);
  cals[1].collect(x);
  EXPECT_EQ(hits() - before, 1);
  cals[2].collect(x.clone());  // the same values elsewhere: counted by the pass
  EXPECT_EQ(hits() - before, 1);
  EXPECT_EQ(cals[1].histogram().counts, cals[2].histogram().counts);
  EXPECT_EQ(cals[0].histogram().counts, cals[2].histogram().counts);
  // The same calibrator on the same batch again counts it again (from the memo).
  cals[1].collect(x);
  EXPECT_EQ(hits() - before, 2);
  const auto& twice = cals[1].histogram().counts;
  const auto& once = cals[2].histogram().counts;
  const auto& none = cals[3].histogram().counts;
  for (size_t b = 0; b < twice.size(); ++b) ASSERT_EQ(twice[b] - once[b], once[b] - none[b]) << b;
}

TEST(PassMemo, AnInPlaceChangeIsCountedAfresh) {
  at::Tensor x = activation(2);
  auto cals = calibrators(3, x * 1.5);
  cals[0].collect(x);
  x.narrow(0, 0, 2).zero_();  // through a view: the version counter is shared
  const int64_t before = hits();
  cals[1].collect(x);
  EXPECT_EQ(hits(), before);
  cals[2].collect(x.clone());
  EXPECT_EQ(cals[1].histogram().counts, cals[2].histogram().counts);
  EXPECT_NE(cals[1].histogram().counts, cals[0].histogram().counts);
}

TEST(PassMemo, ANewTensorIsCountedAfreshWhereverItLives) {
  const at::Tensor first = activation(3) * 1.5;
  auto cals = calibrators(3, first);
  const void* old_data = nullptr;
  {
    const at::Tensor x = activation(4);
    old_data = x.const_data_ptr();
    cals[0].collect(x);
  }  // freed: its memory may come back below with other values and version 0
  const at::Tensor y = activation(5);
  const int64_t before = hits();
  cals[1].collect(y);
  EXPECT_EQ(hits(), before) << "same address as the freed tensor: "
                            << (y.const_data_ptr() == old_data);
  cals[2].collect(y.clone());
  EXPECT_EQ(cals[1].histogram().counts, cals[2].histogram().counts);
}

TEST(PassMemo, OnlyTheSameRuleMatches) {
  const at::Tensor x = activation(6);
  auto plain = calibrators(1, x * 1.5);
  auto skipping = calibrators(2, x * 1.5, /*skip_zeros=*/true);
  auto other_range = calibrators(1, x * 3.0);
  plain[0].collect(x);
  const int64_t before = hits();
  skipping[0].collect(x);
  other_range[0].collect(x);
  EXPECT_EQ(hits(), before);
  skipping[1].collect(x.clone());
  EXPECT_EQ(skipping[0].histogram().counts, skipping[1].histogram().counts);
  EXPECT_NE(skipping[0].histogram().counts, plain[0].histogram().counts);  // zeros not counted
}

TEST(PassMemo, NotUsedForInferenceTensorsOrPerChannel) {
  at::Tensor x;
  {
    c10::InferenceMode guard;
    x = activation(7);
  }
  EXPECT_FALSE(PassMemo::eligible(x));
  auto cals = calibrators(2, x * 1.5);
  int64_t before = hits();
  cals[0].collect(x);
  cals[1].collect(x);
  EXPECT_EQ(hits(), before);
  EXPECT_EQ(cals[0].histogram().counts, cals[1].histogram().counts);

  const at::Tensor y = activation(8);
  HistogramCalibrator a(8, std::vector<int64_t>{1}), b(8, std::vector<int64_t>{1});
  a.collect(y * 1.5);
  b.collect(y * 1.5);
  before = hits();
  a.collect(y);
  b.collect(y);
  EXPECT_EQ(hits(), before);
}

TEST(PassMemo, KeepsTheMostRecentlyUsedEntries) {
  std::vector<at::Tensor> xs;
  for (int i = 0; i < static_cast<int>(PassMemo::kEntries) + 1; ++i)
    xs.push_back(activation(20 + i));
  const at::Tensor first = xs[0] * 1.5;  // a range for all of them
  auto a = calibrators(1, first);
  auto b = calibrators(1, first);
  for (const auto& x : xs) a[0].collect(x);  // one more than the memo holds
  const int64_t before = hits();
  b[0].collect(xs[0]);  // the oldest: gone
  EXPECT_EQ(hits(), before);
  b[0].collect(xs.back());  // the newest: remembered
  EXPECT_EQ(hits(), before + 1);
}

}  // namespace
}  // namespace calib
}  // namespace torchquant
