// Model-level workflow: walking quantizers, selections, calibration loop, sensitivity, sharing,
// summary.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/utils/calibrate.h"
#include "torchquant/utils/quantizers.h"
#include "torchquant/utils/sensitivity.h"
#include "torchquant/utils/share.h"

namespace torchquant {
namespace {

using testing::expect_error;
using utils::QuantizerSelector;

QuantDescriptor histogram_desc() { return QuantDescriptor().calib_method("histogram"); }

struct TinyImpl : torch::nn::Module {
  TinyImpl()
      : conv1(register_module(
            "conv1", nn::QuantConv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1),
                                     nn::QuantLayerOptions().quant_desc_input(histogram_desc())))),
        conv2(register_module("conv2",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1)))),
        add(register_module("add", nn::QuantAdd())),
        fc(register_module("fc", nn::QuantLinear(torch::nn::LinearOptions(4, 2)))) {}
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor y = torch::relu(conv1(x));
    return fc(add(conv2(y), y).mean({2, 3}));
  }
  nn::QuantConv2d conv1, conv2;
  nn::QuantAdd add;
  nn::QuantLinear fc;
};
TORCH_MODULE(Tiny);

std::vector<std::string> names_of(const std::vector<utils::NamedQuantizer>& qs) {
  std::vector<std::string> names;
  for (const auto& q : qs) names.push_back(q.name);
  return names;
}

TEST(Workflow, QuantizerNamesAreUpstreams) {
  Tiny model;
  EXPECT_EQ(names_of(utils::named_quantizers(*model)),
            (std::vector<std::string>{"conv1._input_quantizer", "conv1._weight_quantizer",
                                      "conv2._input_quantizer", "conv2._weight_quantizer",
                                      "add._input0_quantizer", "add._input1_quantizer",
                                      "fc._input_quantizer", "fc._weight_quantizer"}));
}

TEST(Workflow, SelectorsAndActions) {
  Tiny model;
  auto count = [&](const QuantizerSelector& s) {
    return utils::select_quantizers(*model, s).size();
  };
  EXPECT_EQ(count(QuantizerSelector::names({"fc._input_quantizer", "nope"})), 1u);
  EXPECT_EQ(count(QuantizerSelector::glob("conv?._weight_*")), 2u);
  EXPECT_EQ(count(QuantizerSelector::regex("^add\\.")), 2u);
  EXPECT_EQ(count(QuantizerSelector::under("conv1")), 2u);
  EXPECT_EQ(count(QuantizerSelector::under("conv")), 0u) << "a prefix is a whole module name";
  EXPECT_EQ(count(QuantizerSelector::predicate([](const std::string&, const auto& q) {
              return q.calibrator()->name() == "HistogramCalibrator";
            })),
            1u);
  expect_error([] { QuantizerSelector::regex("(["); }, {"QuantizerSelector::regex", "invalid"});

  EXPECT_EQ(utils::disable_quantization(*model, QuantizerSelector::glob("*weight*")), 3);
  EXPECT_FALSE(model->conv1->_weight_quantizer->quant_enabled());
  EXPECT_TRUE(model->conv1->_input_quantizer->quant_enabled());
  EXPECT_EQ(utils::enable_quantization(*model), 8);
  EXPECT_EQ(utils::enable_calibration(*model, QuantizerSelector::under("fc")), 2);
  EXPECT_TRUE(model->fc->_input_quantizer->calib_enabled());
  EXPECT_EQ(utils::disable_calibration(*model), 8);
  EXPECT_EQ(utils::disable_quantizers(*model, QuantizerSelector::under("add")), 2);
  EXPECT_FALSE(model->add->_input0_quantizer->is_enabled());
  EXPECT_EQ(utils::enable_quantizers(*model), 8);
}

TEST(Workflow, SetAttributes) {
  Tiny model;
  utils::set_quantizer_attributes(*model, QuantizerSelector::glob("*._weight_quantizer"),
                                  utils::QuantizerAttributes().num_bits(4).narrow_range(true));
  EXPECT_EQ(model->fc->_weight_quantizer->num_bits(), NumBits(4));
  EXPECT_TRUE(model->conv2->_weight_quantizer->narrow_range());
  EXPECT_EQ(model->fc->_input_quantizer->num_bits(), NumBits(8));
  utils::set_quantizer_attributes(*model, QuantizerSelector::names({"fc._input_quantizer"}),
                                  utils::QuantizerAttributes().axis(std::vector<int64_t>{1}));
  EXPECT_EQ(*model->fc->_input_quantizer->axis(), std::vector<int64_t>{1});
  EXPECT_EQ(model->fc(torch::randn({3, 4})).sizes(), torch::IntArrayRef({3, 2}));
  model->conv1->_input_quantizer->set_amax(1.0);
  expect_error(
      [&] {
        utils::set_quantizer_attributes(*model, QuantizerSelector::under("conv1"),
                                        utils::QuantizerAttributes().axis(std::vector<int64_t>{}));
      },
      {"set_axis", "already has an amax"});
}

TEST(Workflow, CalibrateLoadsAmaxAndRestoresModes) {
  torch::manual_seed(0);
  Tiny model;
  model->train();
  model->fc->_weight_quantizer->disable();  // a state the loop must give back
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 5; ++i) batches.push_back(torch::randn({2, 3, 8, 8}));
  size_t next = 0;
  std::ostringstream progress;
  const auto summary = utils::calibrate(
      *model,
      [&] {
        if (next == batches.size()) return false;
        EXPECT_FALSE(model->is_training());
        EXPECT_FALSE(at::GradMode::is_enabled());
        model->forward(batches[next++]);
        return true;
      },
      utils::CalibrateOptions()
          .num_batches(4)
          .method(calib::ComputeAmaxOptions("percentile").percentile(99.9))
          .progress(utils::Progress::kLines)
          .progress_stream(&progress));
  EXPECT_EQ(summary.batches, 4);
  EXPECT_EQ(next, 4u);
  EXPECT_EQ(summary.calibrated.size(), 8u);
  EXPECT_TRUE(model->is_training());
  EXPECT_FALSE(model->fc->_weight_quantizer->is_enabled());
  for (const auto& nq : utils::named_quantizers(*model)) {
    EXPECT_TRUE(nq.quantizer->quant_enabled()) << nq.name;
    EXPECT_FALSE(nq.quantizer->calib_enabled()) << nq.name;
    EXPECT_TRUE(nq.quantizer->has_amax()) << nq.name;
  }
  // The histogram quantizer got the percentile, the max ones their max.
  at::Tensor x_all = torch::cat({batches[0], batches[1], batches[2], batches[3]});
  EXPECT_EQ(model->conv1->_weight_quantizer->amax().sizes(), torch::IntArrayRef({4, 1, 1, 1}));
  EXPECT_LT(model->conv1->_input_quantizer->amax().item<float>(), x_all.abs().max().item<float>());
  EXPECT_NE(progress.str().find("calibrating: batch 4/4"), std::string::npos) << progress.str();
  EXPECT_NE(summary.str().find("calibrated 8 quantizers on 4 batches"), std::string::npos);
}

TEST(Workflow, CalibrateRestoresModesWhenForwardThrows) {
  Tiny model;
  int calls = 0;
  EXPECT_ANY_THROW(utils::calibrate(
      *model,
      [&]() -> bool {
        if (++calls == 2) throw std::runtime_error("data loader failed");
        model->forward(torch::randn({1, 3, 4, 4}));
        return true;
      },
      utils::CalibrateOptions().progress(utils::Progress::kSilent)));
  for (const auto& nq : utils::named_quantizers(*model)) {
    EXPECT_TRUE(nq.quantizer->quant_enabled()) << nq.name;
    EXPECT_FALSE(nq.quantizer->calib_enabled()) << nq.name;
  }
  EXPECT_TRUE(model->is_training());
}

TEST(Workflow, CalibrateOverADataLoaderAndStrictness) {
  Tiny model;
  auto dataset = torch::data::datasets::TensorDataset(torch::randn({12, 3, 6, 6}))
                     .map(torch::data::transforms::Stack<torch::data::TensorExample>());
  auto loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
      std::move(dataset), 4);
  const auto summary = utils::calibrate(
      *model, *loader, [&](const auto& batch) { model->forward(batch.data); },
      utils::CalibrateOptions().progress(utils::Progress::kSilent));
  EXPECT_EQ(summary.batches, 3);
  // A layer the forward never uses: an error naming it, or a report with strict(false).
  struct WithUnusedImpl : TinyImpl {
    WithUnusedImpl() {
      unused = register_module("unused", nn::QuantLinear(torch::nn::LinearOptions(2, 2)));
    }
    nn::QuantLinear unused{nullptr};
  };
  WithUnusedImpl m2;
  auto run = [&](bool strict) {
    int left = 2;
    return utils::calibrate(
        m2,
        [&] {
          if (left-- == 0) return false;
          m2.forward(torch::randn({1, 3, 4, 4}));
          return true;
        },
        utils::CalibrateOptions().strict(strict).progress(utils::Progress::kSilent));
  };
  expect_error([&] { run(true); }, {"calibrate", "unused._input_quantizer", "saw no data"});
  const auto relaxed = run(false);
  EXPECT_EQ(relaxed.without_data,
            (std::vector<std::string>{"unused._input_quantizer", "unused._weight_quantizer"}));
  expect_error([&] { utils::calibrate(*model, nullptr); }, {"calibrate", "empty batch function"});
}

TEST(Workflow, SensitivityRanksTheCoarsestLayerFirst) {
  torch::manual_seed(1);
  Tiny model;
  model->eval();
  const at::Tensor x = torch::randn({8, 3, 8, 8});
  nn::quant_modules::deactivate();
  const at::Tensor reference = model->forward(x).detach();
  nn::quant_modules::initialize();
  utils::set_quantizer_attributes(*model, QuantizerSelector::under("conv2"),
                                  utils::QuantizerAttributes().num_bits(2));
  auto error = [&] { return (model->forward(x) - reference).pow(2).mean().item<double>(); };
  const auto results = utils::sensitivity_analysis(
      *model, error, utils::SensitivityOptions().higher_is_better(false));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results.front().layer, "conv2");
  EXPECT_GT(results.front().sensitivity, 0);
  for (const auto& nq : utils::named_quantizers(*model)) EXPECT_TRUE(nq.quantizer->is_enabled());
  const auto alone = utils::sensitivity_analysis(*model, error,
                                                 utils::SensitivityOptions()
                                                     .mode(utils::SensitivityMode::kQuantizeOne)
                                                     .higher_is_better(false));
  EXPECT_EQ(alone.front().layer, "conv2");
  EXPECT_NE(utils::sensitivity_csv(results).find("1,conv2,"), std::string::npos);
  EXPECT_NE(utils::sensitivity_json(results).find("\"layer\": \"conv2\""), std::string::npos);
  EXPECT_NE(utils::sensitivity_table(results).find("conv2"), std::string::npos);
  EXPECT_EQ(utils::leave_unquantized(*model, results, 1), std::vector<std::string>{"conv2"});
  EXPECT_FALSE(model->conv2->_input_quantizer->is_enabled());
  EXPECT_FALSE(model->conv2->_weight_quantizer->is_enabled());
  EXPECT_TRUE(model->conv1->_input_quantizer->is_enabled());
  expect_error([&] { utils::leave_unquantized(*model, results, 9); }, {"leave_unquantized", "9"});
}

TEST(Workflow, SharedQuantizerGivesOneScale) {
  torch::manual_seed(2);
  Tiny model;
  utils::share_quantizer(*model, "fc._input_quantizer",
                         {"add._input0_quantizer", "add._input1_quantizer"});
  EXPECT_EQ(model->add->_input0_quantizer.ptr(), model->fc->_input_quantizer.ptr());
  EXPECT_EQ(model->add->named_children()["_input1_quantizer"], model->fc->_input_quantizer.ptr());
  int left = 3;
  utils::calibrate(
      *model,
      [&] {
        if (left-- == 0) return false;
        model->forward(torch::randn({2, 3, 6, 6}));
        return true;
      },
      utils::CalibrateOptions().progress(utils::Progress::kSilent));
  EXPECT_TRUE(
      torch::equal(model->add->_input0_quantizer->amax(), model->fc->_input_quantizer->amax()));
  EXPECT_EQ(utils::named_quantizers(*model).size(), 6u) << "a shared quantizer is listed once";
  expect_error([&] { utils::share_quantizer(*model, "nope", {"add._input0_quantizer"}); },
               {"share_quantizer", "'nope'"});
  expect_error([&] { utils::share_quantizer(*model, "fc._input_quantizer", {"conv1._bogus"}); },
               {"share_quantizer", "no quantizer named '_bogus'"});
}

TEST(Workflow, SummaryTableAndJson) {
  Tiny model;
  model->conv1->_weight_quantizer->set_amax(
      torch::tensor({0.1f, 0.2f, 0.3f, 2.f}).view({4, 1, 1, 1}));
  model->add->_input0_quantizer->disable();
  const auto rows = utils::quantizer_summary(*model);
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0].calibrator, "HistogramCalibrator");
  EXPECT_EQ(rows[1].amax, "[0.1000, 2.0000](4)");
  EXPECT_EQ(rows[1].axis, "(0,)");
  EXPECT_EQ(rows[0].amax, "dynamic");
  EXPECT_EQ(rows[4].state, "disabled");
  EXPECT_EQ(rows[5].state, "quant");
  std::ostringstream table;
  utils::print_quantizer_summary(*model, table);
  EXPECT_NE(table.str().find("conv1._weight_quantizer"), std::string::npos);
  EXPECT_NE(table.str().find("8 quantizers"), std::string::npos);
  EXPECT_NE(utils::quantizer_summary_json(*model).find("\"amax\": \"[0.1000, 2.0000](4)\""),
            std::string::npos);
}

}  // namespace
}  // namespace torchquant
