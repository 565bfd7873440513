// The bad-input matrix (docs/bad_inputs.md): the rows that no other test file covers. Each error
// test checks the message (function, value, what was expected) and that no state was lost.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"
#include "torchquant/nn/modules/tensor_quantizer.h"
#include "torchquant/quant_descriptor.h"
#include "torchquant/tensor_quant.h"
#include "torchquant/utils/calib_cache.h"

namespace torchquant {
namespace {

using calib::ComputeAmaxOptions;
using calib::HistogramCalibrator;
using calib::MaxCalibrator;
using nn::TensorQuantizer;
using testing::expect_error;

void expect_same_histograms(const std::vector<calib::HistogramState>& a,
                            const std::vector<calib::HistogramState>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t c = 0; c < a.size(); ++c) {
    EXPECT_EQ(a[c].counts, b[c].counts) << "channel " << c;
    EXPECT_EQ(a[c].edges, b[c].edges) << "channel " << c;
    EXPECT_EQ(a[c].num_bins, b[c].num_bins) << "channel " << c;
    EXPECT_EQ(a[c].pending_zeros, b[c].pending_zeros) << "channel " << c;
  }
}

// -- ops -----------------------------------------------------------------------------------------

TEST(BadInputsOps, NanStaysNanAndInfSaturatesInEveryOp) {
  const at::Tensor x = torch::tensor({NAN, INFINITY, -INFINITY, 0.3f});
  const at::Tensor amax = torch::tensor(2.0f);
  // What the finite extremes give: +-Inf must give the same.
  const at::Tensor edges = torch::tensor({2.0f, -2.0f});
  const at::Tensor fq = fake_tensor_quant(x, amax);
  EXPECT_TRUE(std::isnan(fq[0].item<float>()));
  EXPECT_TRUE(torch::equal(fq.slice(0, 1, 3), fake_tensor_quant(edges, amax)));
  auto [q, scale] = tensor_quant(x, amax);
  EXPECT_TRUE(std::isnan(q[0].item<float>()));
  EXPECT_TRUE(torch::equal(q.slice(0, 1, 3), std::get<0>(tensor_quant(edges, amax))));
  const at::Tensor e4 = scaled_e4m3(x, amax);
  EXPECT_TRUE(std::isnan(e4[0].item<float>()));
  EXPECT_TRUE(torch::equal(e4.slice(0, 1, 3), scaled_e4m3(edges, amax)));
  const at::Tensor lo = torch::tensor(-1.0f), hi = torch::tensor(2.0f);
  const at::Tensor af = fake_affine_tensor_quant(x, lo, hi);
  EXPECT_TRUE(std::isnan(af[0].item<float>()));
  EXPECT_TRUE(torch::equal(af.slice(0, 1, 3),
                           fake_affine_tensor_quant(torch::tensor({2.0f, -1.0f}), lo, hi)));
  // Unsigned: NaN is not negative (passes through), -Inf is.
  EXPECT_TRUE(std::isnan(fake_tensor_quant(x.slice(0, 0, 2), amax, 8, true)[0].item<float>()));
  expect_error([&] { fake_tensor_quant(x, amax, 8, true); },
               {"torchquant::fake_tensor_quant", "negative values", "unsigned=true"});
}

TEST(BadInputsOps, InfAmaxIsAnErrorThatLeavesInPlaceInputsUntouched) {
  const at::Tensor x = torch::randn({4, 3});
  const at::Tensor inf = torch::tensor(INFINITY);
  expect_error([&] { fake_tensor_quant(x, inf); },
               {"torchquant::fake_tensor_quant", "amax contains Inf", "finite non-negative"});
  expect_error([&] { tensor_quant(x, inf); }, {"torchquant::tensor_quant", "amax contains Inf"});
  expect_error([&] { scaled_e4m3(x, inf); }, {"torchquant::scaled_e4m3", "amax contains Inf"});
  const at::Tensor per_channel = torch::tensor({1.0f, INFINITY, 2.0f}).reshape({1, 3});
  expect_error([&] { fake_tensor_quant(x, per_channel); }, {"amax contains Inf"});
  expect_error([&] { fake_tensor_quant(x, -inf); }, {"amax must be non-negative", "-inf"});
  at::Tensor y = x.clone();
  expect_error([&] { fake_tensor_quant_(y, per_channel); },
               {"torchquant::fake_tensor_quant_", "amax contains Inf"});
  EXPECT_TRUE(torch::equal(y, x));
}

TEST(BadInputsOps, AffineRangeMustBeFinite) {
  const at::Tensor x = torch::randn({5});
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(-1.0f), torch::tensor(INFINITY)); },
               {"torchquant::fake_affine_tensor_quant", "must be finite", "max_range=inf"});
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(-INFINITY), torch::tensor(1.0f)); },
               {"must be finite", "min_range=-inf"});
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(NAN), torch::tensor(1.0f)); },
               {"must be finite", "min_range=nan"});
  expect_error(
      [&] { fake_affine_tensor_quant(x, torch::tensor(-1.0f).to(at::kMeta), torch::tensor(1.0f)); },
      {"torchquant::fake_affine_tensor_quant", "min_range is on meta", "inputs are on cpu"});
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(-1.0f), torch::tensor(1)); },
               {"max_range must be float32, float64, float16 or bfloat16, got Long"});
}

TEST(BadInputsOps, InPlaceErrorsLeaveTheInputUntouched) {
  const at::Tensor x = torch::randn({6, 5});
  at::Tensor y = x.clone();
  expect_error([&] { fake_tensor_quant_(y, torch::tensor(NAN)); },
               {"torchquant::fake_tensor_quant_", "amax contains NaN"});
  expect_error([&] { fake_tensor_quant_(y, torch::tensor(-0.5f)); },
               {"torchquant::fake_tensor_quant_", "non-negative", "-0.5"});
  expect_error([&] { fake_tensor_quant_(y, torch::tensor(1.0f), 17); },
               {"torchquant::fake_tensor_quant_", "num_bits must be in [2, 16]", "17"});
  expect_error(
      [&] {
        fake_tensor_quant_(y, torch::ones({5, 1}));
      },
      {"torchquant::fake_tensor_quant_", "amax of shape [5, 1]", "[6, 5]"});
  at::Tensor out = torch::empty({6, 5}, at::kDouble);
  expect_error([&] { fake_tensor_quant_out(out, y, torch::tensor(1.0f)); },
               {"torchquant::fake_tensor_quant_out", "out must have the dtype and device", "Float",
                "got Double"});
  EXPECT_TRUE(torch::equal(y, x));
}

TEST(BadInputsOps, EmptyInputsGiveEmptyOutputsInEveryOp) {
  const at::Tensor x = torch::empty({0, 3});
  const at::Tensor per_channel = torch::ones({1, 3});
  EXPECT_EQ(fake_tensor_quant(x, per_channel).sizes(), x.sizes());
  EXPECT_EQ(std::get<0>(tensor_quant(x, per_channel, 4)).sizes(), x.sizes());
  EXPECT_EQ(scaled_e4m3(x, torch::tensor(1.0f)).sizes(), x.sizes());
  EXPECT_EQ(fake_affine_tensor_quant(x, torch::tensor(-1.0f), torch::tensor(1.0f)).sizes(),
            x.sizes());
  at::Tensor out = torch::empty({0, 3});
  EXPECT_EQ(fake_tensor_quant_out(out, x, torch::tensor(1.0f)).sizes(), x.sizes());
  // The amax values are still checked.
  expect_error([&] { fake_tensor_quant(x, torch::tensor(NAN)); }, {"amax contains NaN"});
}

TEST(BadInputsOps, WrongDtypeOrDeviceOfAnyArgument) {
  const at::Tensor x = torch::randn({2, 3});
  const at::Tensor amax = torch::tensor(1.0f);
  expect_error([&] { fake_tensor_quant(x.to(at::kMeta), amax); },
               {"torchquant::fake_tensor_quant", "amax is on cpu but inputs are on meta"});
  expect_error([&] { scaled_e4m3(x, amax.to(at::kMeta)); },
               {"torchquant::scaled_e4m3", "amax is on meta but inputs are on cpu"});
  expect_error([&] { scaled_e4m3(x, torch::empty({0})); },
               {"torchquant::scaled_e4m3", "amax must hold one value", "[0]"});
  expect_error([&] { scaled_e4m3(x, torch::tensor(2)); },
               {"torchquant::scaled_e4m3", "amax must be float32", "got Long"});
  expect_error([&] { fake_tensor_quant(torch::ones({2}, at::kComplexFloat), amax); },
               {"inputs must be float32, float64, float16 or bfloat16, got ComplexFloat"});
  expect_error([&] { tensor_quant(torch::ones({2}, at::kBool), amax); },
               {"torchquant::tensor_quant", "got Bool"});
  expect_error(
      [&] {
        fake_tensor_quant(torch::tensor(0.5f), torch::ones({1, 1}));
      },
      {"amax of shape [1, 1] does not broadcast to inputs of shape []"});
}

TEST(BadInputsOps, NonContiguousAmaxInputsAndOutputsMatchContiguous) {
  torch::manual_seed(11);
  const at::Tensor x = torch::randn({3, 4, 5, 6});
  const at::Tensor amax = x.abs().amax({0, 2, 3}, true);  // [1, 4, 1, 1]
  const at::Tensor ref = fake_tensor_quant(x, amax, 6);
  // amax as a strided view: a column of a [4, 2] tensor.
  const at::Tensor wide = torch::stack({amax.reshape({4}), amax.reshape({4})}, 1);
  const at::Tensor strided_amax = wide.select(1, 0).view({1, 4, 1, 1});
  ASSERT_FALSE(strided_amax.is_contiguous());
  EXPECT_TRUE(torch::equal(fake_tensor_quant(x, strided_amax, 6), ref));
  // Stride-0 (expanded) per-tensor amax.
  const at::Tensor expanded = torch::tensor(1.5f).expand({1, 4, 1, 1});
  EXPECT_TRUE(torch::equal(fake_tensor_quant(x, expanded, 6),
                           fake_tensor_quant(x, torch::tensor(1.5f), 6)));
  // Channels-last and transposed inputs through every op.
  const at::Tensor cl = x.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor tr = x.transpose(1, 3).contiguous().transpose(1, 3);
  ASSERT_FALSE(tr.is_contiguous());
  for (const at::Tensor& v : {cl, tr}) {
    EXPECT_TRUE(
        torch::equal(std::get<0>(tensor_quant(v, amax, 6)), std::get<0>(tensor_quant(x, amax, 6))));
    EXPECT_TRUE(
        torch::equal(scaled_e4m3(v, torch::tensor(2.0f)), scaled_e4m3(x, torch::tensor(2.0f))));
    EXPECT_TRUE(
        torch::equal(fake_affine_tensor_quant(v, torch::tensor(-1.0f), torch::tensor(2.0f)),
                     fake_affine_tensor_quant(x, torch::tensor(-1.0f), torch::tensor(2.0f))));
    at::Tensor in_place = v.clone();  // keeps the strides
    fake_tensor_quant_(in_place, amax, 6);
    EXPECT_TRUE(torch::equal(in_place, ref));
  }
}

TEST(BadInputsOps, UnsignedEdgeValues) {
  // -0.0 is not negative; one unsigned bit is allowed (levels 0 and amax).
  const at::Tensor y = fake_tensor_quant(torch::tensor({-0.0f, 0.4f, 0.6f}), torch::tensor(1.0f), 1,
                                         /*is_unsigned=*/true);
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.0f, 0.0f, 1.0f})));
  expect_error([] { fake_tensor_quant(torch::tensor({0.5f}), torch::tensor(1.0f), 17, true); },
               {"num_bits must be in [1, 16] for unsigned quantization, got 17"});
}

TEST(BadInputsOps, Float16FakeQuantWithAScaleAboveFloat16MaxGivesZerosAsUpstream) {
  // pytorch_quantization divides by scale.half(): max_bound / amax > 65504 becomes Inf and the
  // outputs 0 (docs/numerics.md). tensor_quant refuses it; bfloat16 and float32 are exact.
  const at::Tensor x = torch::tensor({-1e-3f, 5e-4f, 1e-3f});
  const at::Tensor small = torch::tensor(1e-3f);  // 127 / 1e-3 = 127000
  EXPECT_TRUE(fake_tensor_quant(x.to(at::kHalf), small).eq(0).all().item<bool>());
  EXPECT_FALSE(fake_tensor_quant(x.to(at::kBFloat16), small).eq(0).all().item<bool>());
  EXPECT_FALSE(fake_tensor_quant(x.to(at::kHalf), torch::tensor(127.0f / 65504.0f))
                   .eq(0)
                   .all()
                   .item<bool>());
  expect_error([&] { tensor_quant(x.to(at::kHalf), small); },
               {"torchquant::tensor_quant", "scale 127000", "overflows float16"});
  // 16-bit unsigned levels above 65504 do not fit in float16 (q.half(), as upstream): Inf.
  // (amax 2: the scale 32767.5 fits, the top level 65535 does not.)
  const at::Tensor top = torch::tensor({2.0f, 1.0f}, at::kHalf);
  const at::Tensor y = fake_tensor_quant(top, torch::tensor(2.0f), 16, /*is_unsigned=*/true);
  EXPECT_TRUE(std::isinf(y[0].item<float>()));
  EXPECT_TRUE(std::isfinite(y[1].item<float>()));
  EXPECT_EQ(fake_tensor_quant(top, torch::tensor(2.0f), 15, true)[0].item<float>(), 2.0f);
}

// -- TensorQuantizer -----------------------------------------------------------------------------

TEST(BadInputsQuantizer, EmptyInputsWithDynamicAmax) {
  for (const at::Tensor& x : {torch::empty({0, 3}), torch::empty({3, 0}), torch::empty({0})}) {
    TensorQuantizer per_tensor;
    EXPECT_EQ(per_tensor(x).sizes(), x.sizes());
    TensorQuantizer per_row(QuantDescriptor().axis(0));
    EXPECT_EQ(per_row(x).sizes(), x.sizes());
    TensorQuantizer real(QuantDescriptor().fake_quant(false));
    EXPECT_EQ(real(x).sizes(), x.sizes());
  }
  // The gradient of an empty input is empty too.
  const at::Tensor leaf = torch::empty({0, 4}, torch::requires_grad());
  TensorQuantizer q;
  q(leaf).sum().backward();
  EXPECT_EQ(leaf.grad().sizes(), leaf.sizes());
}

TEST(BadInputsQuantizer, NanOrInfInputsWithDynamicAmaxAreErrorsNamingTheInputs) {
  TensorQuantizer q;
  expect_error([&] { q(torch::tensor({1.0f, NAN})); }, {"amax contains NaN", "inputs contain NaN"});
  expect_error(
      [&] {
        q(torch::tensor({1.0f, INFINITY}));
      },
      {"amax contains Inf", "inputs contain Inf"});
  TensorQuantizer per_row(QuantDescriptor().axis(0));
  expect_error(
      [&] {
        per_row(torch::tensor({{1.0f, 2.0f}, {INFINITY, 0.0f}}));
      },
      {"amax contains Inf"});
  // With a fixed amax they behave as in the ops.
  TensorQuantizer fixed(QuantDescriptor().amax(1.0));
  const at::Tensor y = fixed(torch::tensor({NAN, INFINITY, -INFINITY}));
  EXPECT_TRUE(std::isnan(y[0].item<float>()));
  EXPECT_EQ(y[1].item<float>(), 1.0f);
  // Full range (the descriptor's default): -Inf goes to the extra level -amax - step.
  EXPECT_EQ(
      y[2].item<float>(),
      fake_tensor_quant(torch::tensor(-2.0f), torch::tensor(1.0f), 8, false, false).item<float>());
}

TEST(BadInputsQuantizer, InvalidAmaxIsStoredAndRejectedAtForward) {
  // set_amax and the descriptor take any value (NaN is upstream's "never calibrated");
  // the forward names the problem.
  TensorQuantizer q;
  q->set_amax(NAN);
  expect_error([&] { q(torch::ones({2})); },
               {"torchquant::fake_tensor_quant", "amax contains NaN"});
  q->set_amax(-1.0);
  expect_error([&] { q(torch::ones({2})); }, {"amax must be non-negative", "-1"});
  EXPECT_EQ(q->amax().item<float>(), -1.0f) << "the failed forward changed amax";
  TensorQuantizer from_desc(QuantDescriptor().amax(-2.0));
  expect_error([&] { from_desc(torch::ones({2})); }, {"amax must be non-negative", "-2"});
  TensorQuantizer ints;
  ints->set_amax(torch::tensor(2));  // stored as float32
  EXPECT_EQ(ints->amax().scalar_type(), at::kFloat);
  EXPECT_TRUE(
      torch::equal(ints(torch::ones({2})),
                   fake_tensor_quant(torch::ones({2}), torch::tensor(2.0f), 8, false, false)));
  TensorQuantizer fixed(QuantDescriptor().amax(1.0));
  expect_error([&] { fixed(torch::ones({2}, at::kInt)); },
               {"torchquant::fake_tensor_quant", "inputs must be float32", "got Int"});
  fixed->set_pre_quant_scale(torch::ones({3}));
  expect_error([&] { fixed(torch::ones({2})); }, {"must match the size"});
}

TEST(BadInputsQuantizer, ANanBatchWhileCalibratingKeepsTheCollectedHistogram) {
  TensorQuantizer q(QuantDescriptor().calib_method("histogram").num_bins(64));
  q->disable_quant();
  q->enable_calib();
  q(torch::randn({500}));
  const auto* hist = dynamic_cast<const HistogramCalibrator*>(q->calibrator());
  ASSERT_NE(hist, nullptr);
  const auto before = hist->histograms();
  at::Tensor bad = torch::randn({500}) * 10;  // would grow the range
  bad[7] = NAN;
  expect_error([&] { q(bad); },
               {"HistogramCalibrator::collect", "NaN or Inf", "nothing was collected"});
  expect_same_histograms(before, hist->histograms());
}

// -- calibrators and compute_amax ----------------------------------------------------------------

TEST(BadInputsCalibrators, NanInOneChannelKeepsEveryChannel) {
  HistogramCalibrator hist(8, std::vector<int64_t>{0}, false, 32);
  MaxCalibrator max_calib(8, std::vector<int64_t>{0});
  const at::Tensor good = torch::rand({3, 40});
  hist.collect(good);
  max_calib.collect(good);
  const auto before = hist.histograms();
  at::Tensor bad = torch::rand({3, 40}) * 4;  // channels 0 and 1 would grow first
  bad[2][5] = NAN;
  expect_error([&] { hist.collect(bad); }, {"HistogramCalibrator::collect", "NaN or Inf"});
  expect_same_histograms(before, hist.histograms());
  bad[2][5] = -INFINITY;
  expect_error([&] { max_calib.collect(bad); }, {"MaxCalibrator::collect", "NaN or Inf"});
  EXPECT_TRUE(torch::equal(*max_calib.compute_amax(), good.abs().amax({1}, true)));
}

TEST(BadInputsCalibrators, EmptyBatchesAreIgnored) {
  MaxCalibrator per_tensor;
  MaxCalibrator per_row(8, std::vector<int64_t>{0});
  HistogramCalibrator hist(8, std::vector<int64_t>{1}, false, 16);
  for (const at::Tensor& empty : {torch::empty({0, 3}), torch::empty({4, 0})}) {
    per_tensor.collect(empty);
    per_row.collect(empty);
    hist.collect(empty);
  }
  EXPECT_FALSE(per_tensor.compute_amax().has_value());
  EXPECT_FALSE(per_row.compute_amax().has_value());
  EXPECT_FALSE(hist.compute_amax("percentile").has_value());
  const at::Tensor x = torch::rand({4, 3});
  per_row.collect(x);
  per_row.collect(torch::empty({4, 0}));
  per_row.collect(torch::empty({0, 3}));  // another row count, but nothing to learn
  EXPECT_TRUE(torch::equal(*per_row.compute_amax(), x.abs().amax({1}, true)));
  // The axis is still checked on an empty batch.
  expect_error(
      [&] {
        MaxCalibrator(8, std::vector<int64_t>{3}).collect(torch::empty({0, 2}));
      },
      {"MaxCalibrator::collect", "axis 3 is out of range", "2-d"});
}

TEST(BadInputsCalibrators, Float64AndFloat16Batches) {
  torch::manual_seed(12);
  const at::Tensor x = torch::randn({5, 7}, at::kDouble);
  MaxCalibrator per_tensor;
  MaxCalibrator per_row(8, std::vector<int64_t>{0});
  per_tensor.collect(x);
  per_row.collect(x);
  per_row.collect(x.to(at::kHalf));
  EXPECT_TRUE(torch::equal(*per_tensor.compute_amax(), x.abs().max().to(at::kFloat)));
  EXPECT_TRUE(torch::equal(*per_row.compute_amax(),
                           torch::maximum(x.abs().amax({1}, true).to(at::kFloat),
                                          x.to(at::kHalf).abs().amax({1}, true).to(at::kFloat))));
  // Values beyond float32 are Inf for the float32 statistics: an error, nothing collected.
  const at::Tensor huge = torch::tensor({1.0, 1e300}, at::kDouble);
  expect_error([&] { per_tensor.collect(huge); }, {"MaxCalibrator::collect", "NaN or Inf"});
  EXPECT_TRUE(torch::equal(*per_tensor.compute_amax(), x.abs().max().to(at::kFloat)));
  HistogramCalibrator hist;
  hist.collect(x);
  const auto before = hist.histograms();
  expect_error([&] { hist.collect(huge); }, {"HistogramCalibrator::collect", "NaN or Inf"});
  expect_same_histograms(before, hist.histograms());
}

TEST(BadInputsCalibrators, MisuseIsHarmless) {
  // compute before collect: no amax.
  HistogramCalibrator hist(8, std::vector<int64_t>{0}, false, 16);
  EXPECT_FALSE(hist.compute_amax("entropy").has_value());
  EXPECT_FALSE(MaxCalibrator().compute_amax().has_value());
  // Shape changes: an error naming both shapes, the state kept.
  hist.collect(torch::rand({4, 3}));
  const auto before = hist.histograms();
  expect_error(
      [&] {
        hist.collect(torch::rand({5, 3}));
      },
      {"HistogramCalibrator::collect", "amax shape changed!", "[4, 1]", "[5, 1]"});
  expect_same_histograms(before, hist.histograms());
  MaxCalibrator max_calib(8, std::vector<int64_t>{0});
  max_calib.collect(torch::rand({4, 3}));
  const at::Tensor amax = *max_calib.compute_amax();
  expect_error(
      [&] {
        max_calib.collect(torch::rand({4, 3, 2}));
      },
      {"MaxCalibrator::collect", "amax shape changed!", "[4, 1]", "[4, 1, 1]"});
  EXPECT_TRUE(torch::equal(*max_calib.compute_amax(), amax));
  // Collect after reset starts a new range.
  HistogramCalibrator fresh(8, c10::nullopt, false, 16);
  fresh.collect(torch::full({3}, 5.0f));
  fresh.reset();
  fresh.collect(torch::full({2}, 1.0f));
  EXPECT_EQ(fresh.histogram().edges.back(), 1.0f);
  EXPECT_EQ(fresh.histogram().counts.back(), 2);
}

TEST(BadInputsCalibrators, GrowthPastTheBinLimitIsAClearErrorThatKeepsTheHistogram) {
  HistogramCalibrator hist(8, c10::nullopt, false, 16);
  hist.collect(torch::tensor({1.0f}));
  const auto before = hist.histograms();
  expect_error([&] { hist.collect(torch::tensor({1e30f})); },
               {"HistogramCalibrator::collect", "max |x| = 1e+30", "would grow the histogram",
                "(at most 16777216)", "nothing was collected"});
  expect_same_histograms(before, hist.histograms());
  hist.collect(torch::tensor({100.0f}));  // 1600 bins: fine
  EXPECT_EQ(hist.histogram().num_bins, 1600);
}

TEST(BadInputsComputeAmax, E4m3NeedsPercentile) {
  HistogramCalibrator hist(NumBits::e4m3());
  hist.collect(torch::randn({100}));
  for (const char* method : {"entropy", "mse"}) {
    expect_error([&] { hist.compute_amax(method); },
                 {"HistogramCalibrator::compute_amax", std::string("\"") + method + "\"",
                  "integer num_bits, got (4, 3)", "percentile"});
  }
  EXPECT_TRUE(hist.compute_amax("percentile").has_value());
  expect_error([&] { hist.compute_amax(ComputeAmaxOptions("percentile").percentile(NAN)); },
               {"percentile must be in [0, 100], got nan"});
}

// -- descriptor parsing --------------------------------------------------------------------------

TEST(BadInputsDescriptor, JsonNumbersOutOfRangeAreMalformedJson) {
  expect_error([] { QuantDescriptor::from_json("{\"amax\": 1e999}"); },
               {"QuantDescriptor::from_json", "malformed JSON", "1e999"});
  expect_error([] { QuantDescriptor::from_json("{\"num_bits\": 99999999999999999999}"); },
               {"'num_bits' must be an integer or [4, 3]"});
  expect_error([] { QuantDescriptor::from_json(""); }, {"malformed JSON"});
  expect_error([] { QuantDescriptor::from_yaml(""); },
               {"QuantDescriptor::from_yaml", "expected a mapping", "null"});
  expect_error([] { QuantDescriptor::from_yaml("num_bits: null\n"); }, {"'num_bits'", "null"});
}

TEST(BadInputsDescriptor, RepeatedKeysKeepTheLastAndAmaxValuesAreNotChecked) {
  EXPECT_EQ(QuantDescriptor::from_json("{\"num_bits\": 8, \"num_bits\": 4}").num_bits(),
            NumBits(4));
  EXPECT_EQ(QuantDescriptor::from_yaml("num_bits: 8\nnum_bits: 4\n").num_bits(), NumBits(4));
  // As upstream: a negative or NaN amax is accepted here and rejected by the first forward.
  EXPECT_EQ(QuantDescriptor::from_json("{\"amax\": -1.0}").amax().item<float>(), -1.0f);
  EXPECT_TRUE(std::isnan(QuantDescriptor::from_yaml("amax: .nan\n").amax().item<float>()));
}

// -- TensorRT calibration cache ------------------------------------------------------------------

TEST(BadInputsCalibCache, ScalesMustBeFiniteAndNonNegative) {
  const std::string path = ::testing::TempDir() + "bad_inputs.cache";
  for (const char* bits : {"7fc00000", "7f800000", "ff800000", "bf800000"}) {
    std::ofstream(path) << "TRT-8601-EntropyCalibration2\ninput: 3c010204\nact: " << bits << "\n";
    expect_error([&] { utils::read_calib_cache(path); },
                 {"torchquant::utils::read_calib_cache", "line 3", "the scale of 'act'",
                  std::string("(") + bits + ")", "expected a finite float32 >= 0"});
  }
  utils::CalibCache cache;
  cache.scales = {{"a", 0.5f}, {"b", NAN}};
  expect_error([&] { utils::write_calib_cache(path, cache); },
               {"torchquant::utils::write_calib_cache", "the scale of 'b' is nan"});
  // A header alone is an empty cache; a blank line before it is not a header.
  std::ofstream(path) << "TRT-8601-EntropyCalibration2";
  EXPECT_TRUE(utils::read_calib_cache(path).scales.empty());
  std::ofstream(path) << "\nTRT-8601-EntropyCalibration2\n";
  expect_error([&] { utils::read_calib_cache(path); }, {"line 1: expected the header", "got ''"});
  std::remove(path.c_str());
}

// Found by tests/fuzz/fuzz_descriptor: bytes that are not UTF-8 in YAML (which yaml-cpp accepts)
// escaped as nlohmann::json::type_error when an error message or to_json printed them, and a
// sequence used as a key escaped as YAML::BadConversion.
TEST(BadInputsDescriptor, FuzzFindingsInYamlAreC10Errors) {
  expect_error(
      [] {
        QuantDescriptor::from_yaml(
            "fake_quant: tr\xff\xff"
            "e\n");
      },
      {"QuantDescriptor::from_yaml", "'fake_quant' must be a boolean"});
  expect_error([] { QuantDescriptor::from_yaml("name: a\xc8w\n"); },
               {"QuantDescriptor::from_yaml: 'name' must be valid UTF-8"});
  expect_error([] { QuantDescriptor::from_yaml("? [1, 2]\n: 3\n"); },
               {"QuantDescriptor::from_yaml: malformed YAML"});
  const QuantDescriptor bad_name = QuantDescriptor().name(std::string("w\xff"));
  expect_error([&] { (void)bad_name.to_json(); },
               {"QuantDescriptor::to_json: the name is not valid UTF-8"});
  EXPECT_EQ(QuantDescriptor::from_json(QuantDescriptor().name("w\xc3\xa9").to_json()).name(),
            std::string("w\xc3\xa9"));  // valid UTF-8 round-trips
  // Control characters (NUL included) and line breaks round-trip through YAML in double quotes.
  const QuantDescriptor control = QuantDescriptor().name(std::string("a\0b\x07\n\t\"\\c", 9));
  EXPECT_NE(control.to_yaml().find("name: \"a\\0b\\a\\n\\t\\\"\\\\c\""), std::string::npos)
      << control.to_yaml();
  EXPECT_EQ(QuantDescriptor::from_yaml(control.to_yaml()), control);
  EXPECT_EQ(QuantDescriptor::from_json(control.to_json()), control);
  // Found by fuzz_descriptor in CI: a non-finite amax read from YAML was written to JSON as null.
  const QuantDescriptor inf_amax = QuantDescriptor::from_yaml("num_bits: 8\namax: -.inf\n");
  expect_error([&] { (void)inf_amax.to_json(); },
               {"QuantDescriptor::to_json: amax -inf is not finite", "use to_yaml"});
  EXPECT_EQ(QuantDescriptor::from_yaml(inf_amax.to_yaml()), inf_amax);
}

// Found by tests/fuzz/fuzz_histogram: with a range near FLT_MAX the bin rule's product overflows
// to inf (a float-to-int cast out of range: undefined behaviour); such values land in the last
// bin. A histogram grown past 2^16 bins is counted without per-thread copies (the fuzzer's 2 GB
// limit caught 24 bytes per bin per thread).
TEST(BadInputsCalibrators, HugeRangesAndGrownHistogramsCountEveryElement) {
  calib::HistogramCalibrator huge;
  huge.collect(torch::tensor({3.0e38f, 1.0f, 2.9e38f}));
  EXPECT_EQ(huge.histogram().counts.back(), 2);  // 2.9e38 overflows the rule too
  int64_t total = 0;
  for (int64_t c : huge.histogram().counts) total += c;
  EXPECT_EQ(total, 3);

  calib::HistogramCalibrator grown;
  grown.collect(torch::rand({1000}));
  const at::Tensor big = torch::rand({5000}) * 100;  // about 200k bins
  grown.collect(big);
  const auto& h = grown.histogram();
  ASSERT_GT(h.counts.size(), 100000u);
  total = 0;
  for (int64_t c : h.counts) total += c;
  EXPECT_EQ(total, 6000);
  // Every value above 1 came from the second batch and was counted in the bins above 1.
  const auto above = static_cast<size_t>(std::ceil(1.0f / (h.edges[1] - h.edges[0]))) + 1;
  int64_t high = 0;
  for (size_t b = above; b < h.counts.size(); ++b) high += h.counts[b];
  EXPECT_EQ(high, big.gt(h.edges[above]).sum().item<int64_t>());
}

}  // namespace
}  // namespace torchquant
