// Conformance of the calibrators with pytorch_quantization 2.2.1: reference groups d
// (MaxCalibrator) and e (HistogramCalibrator collection and every amax method).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reference.h"
#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"

namespace torchquant {
namespace {

using testing::all_close;
using testing::RefCase;

c10::optional<std::vector<int64_t>> axis_of(const nlohmann::json& p) {
  if (!p.contains("axis") || p["axis"].is_null()) return c10::nullopt;
  if (p["axis"].is_number_integer()) return std::vector<int64_t>{p["axis"].get<int64_t>()};
  return p["axis"].get<std::vector<int64_t>>();
}

std::vector<RefCase> cases_where(const std::string& group, bool (*keep)(const RefCase&)) {
  std::vector<RefCase> out;
  for (auto& c : testing::reference_cases(group)) {
    if (keep(c)) out.push_back(c);
  }
  return out;
}

class MaxCalibratorReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(MaxCalibratorReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  const auto& p = c.meta["params"];
  calib::MaxCalibrator calib(p["num_bits"].get<int64_t>(), axis_of(p), p["unsigned"].get<bool>(),
                             p["track_amax"].get<bool>());
  EXPECT_FALSE(calib.compute_amax().has_value()) << "nothing collected yet";
  for (int b = 0; b < p["num_batches"].get<int>(); ++b) {
    calib.collect(c.tensor("batch" + std::to_string(b)));
    EXPECT_TRUE(all_close(*calib.compute_amax(),
                          c.tensor("expected_amax_after_b" + std::to_string(b)), 0, 0));
  }
  // The history holds each batch's own amax (upstream's CPU list aliases its first entry to the
  // running max, cpu_observed_amaxs0: a bug we do not copy).
  ASSERT_EQ(calib.amaxs().size(), 3u);
  for (int b = 0; b < 3; ++b) {
    EXPECT_TRUE(all_close(calib.amaxs()[b], c.tensor("expected_amaxs" + std::to_string(b)), 0, 0));
  }
  EXPECT_TRUE(all_close(*calib.compute_amax(), c.tensor("expected_amax"), 0, 0));
}

INSTANTIATE_TEST_SUITE_P(D, MaxCalibratorReference,
                         ::testing::ValuesIn(cases_where(
                             "d_max_calib", [](const RefCase& c) { return c.has("batch1"); })),
                         [](const auto& info) { return testing::case_name(info.param); });

TEST(MaxCalibratorReferenceErrors, ShapeChangeIsAnError) {
  const auto cases = cases_where(
      "d_max_calib", [](const RefCase& c) { return c.meta.contains("expected_exception"); });
  ASSERT_EQ(cases.size(), 1u);
  const auto& p = cases[0].meta["params"];
  calib::MaxCalibrator calib(8, axis_of(p), false);
  calib.collect(cases[0].tensor("batch0"));
  const at::Tensor before = *calib.compute_amax();
  const auto shape = p["second_batch_shape"].get<std::vector<int64_t>>();
  testing::expect_error(
      [&] { calib.collect(torch::rand(shape)); },
      {"MaxCalibrator::collect", "amax shape changed!", "[1, 6, 1, 1]", "[1, 7, 1, 1]"});
  EXPECT_TRUE(torch::equal(*calib.compute_amax(), before)) << "state must survive the error";
}

bool torch_path(const RefCase& c) {
  return c.meta["params"].contains("torch_hist") && c.meta["params"]["torch_hist"].get<bool>();
}

class HistogramCalibratorReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(HistogramCalibratorReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  const auto& p = c.meta["params"];
  calib::HistogramCalibrator calib(p["num_bits"].get<int64_t>(), c10::nullopt,
                                   p["unsigned"].get<bool>(), p["num_bins"].get<int64_t>(),
                                   p["skip_zeros"].get<bool>());
  const auto bins_after = p["num_bins_attr_after_each_batch"].get<std::vector<int64_t>>();
  for (int b = 0; b < p["num_batches"].get<int>(); ++b) {
    const std::string n = std::to_string(b);
    calib.collect(c.tensor("batch" + n));
    const auto& h = calib.histogram();
    EXPECT_TRUE(
        all_close(torch::tensor(h.counts).to(torch::kFloat), c.tensor("hist_after_b" + n), 0, 0))
        << "histogram after batch " << b;
    EXPECT_TRUE(all_close(torch::tensor(h.edges), c.tensor("edges_after_b" + n), 0, 0))
        << "edges after batch " << b;
    EXPECT_EQ(h.num_bins, bins_after[static_cast<size_t>(b)]);
  }
  for (const auto& m : p["methods_in_order"]) {
    calib::ComputeAmaxOptions options(m["method"].get<std::string>());
    options.stride(m["stride"].get<int64_t>()).start_bin(m["start_bin"].get<int64_t>());
    options.percentile(m["percentile"].get<double>());
    const std::string role = m["role"].get<std::string>();
    EXPECT_TRUE(all_close(*calib.compute_amax(options), c.tensor(role), 0, 0)) << role;
  }
  // compute_amax never changes the histogram (upstream's numpy path does).
  EXPECT_TRUE(all_close(torch::tensor(calib.histogram().counts).to(torch::kFloat),
                        c.tensor("hist_after_all_methods"), 0, 0));
}

// The numpy collection path (torch_hist=False) is not mirrored: upstream documents the torch path
// as the reference and the numpy one drops values below its first edge. Only torch-path cases run.
INSTANTIATE_TEST_SUITE_P(E, HistogramCalibratorReference,
                         ::testing::ValuesIn(cases_where("e_hist_calib", torch_path)),
                         [](const auto& info) { return testing::case_name(info.param); });

TEST(HistogramCalibratorReferenceDifference, PerChannelIsSupportedWhereUpstreamRaises) {
  // e_axis_not_supported: upstream raises for an axis; we keep one histogram per channel.
  const auto cases = cases_where("e_hist_calib",
                                 [](const RefCase& c) { return c.name == "e_axis_not_supported"; });
  ASSERT_EQ(cases.size(), 1u);
  calib::HistogramCalibrator calib(8, std::vector<int64_t>{0});
  calib.collect(torch::randn({3, 10}));
  EXPECT_EQ(calib.compute_amax("percentile")->sizes(), torch::IntArrayRef({3, 1}));
}

}  // namespace
}  // namespace torchquant
