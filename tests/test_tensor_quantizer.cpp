// TensorQuantizer beyond the reference cases: flag transitions, errors, state, clone, export mode.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/nn/modules/tensor_quantizer.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using nn::TensorQuantizer;
using nn::TensorQuantizerOptions;
using testing::expect_error;

TEST(TensorQuantizer, PrettyPrintWrapsExtraRepr) {
  TensorQuantizer q;
  std::ostringstream os;
  os << *q;
  EXPECT_EQ(os.str(),
            "TensorQuantizer(8bit fake per-tensor amax=dynamic calibrator=MaxCalibrator scale=1.0 "
            "quant)");
}

TEST(TensorQuantizer, FlagTransitions) {
  TensorQuantizer q(QuantDescriptor().amax(1.0));
  const at::Tensor x = torch::linspace(-2, 2, 17);
  const at::Tensor quantized = fake_tensor_quant(x, torch::tensor(1.f), 8, false, false);
  EXPECT_TRUE(torch::equal(q(x), quantized));
  q->disable();
  EXPECT_FALSE(q->is_enabled());
  EXPECT_TRUE(torch::equal(q(x), x));
  EXPECT_EQ(q->extra_repr(), "disabled");
  q->enable();
  q->disable_quant();
  EXPECT_FALSE(q->quant_enabled());
  EXPECT_TRUE(torch::equal(q(x), x));
  q->enable_quant();
  EXPECT_TRUE(torch::equal(q(x), quantized));
  q->enable_calib();
  EXPECT_TRUE(q->calib_enabled());
  EXPECT_TRUE(torch::equal(q(x), quantized)) << "calibrating while quantizing still quantizes";
  EXPECT_EQ(q->calibrator()->compute_amax()->item<float>(), 2.f);
  q->disable_calib();
  EXPECT_FALSE(q->calib_enabled());
}

TEST(TensorQuantizer, ClipStageRequiresLearnAmax) {
  TensorQuantizer q;
  expect_error([&] { q->enable_clip(); }, {"TensorQuantizer::enable_clip", "learn_amax"});
  expect_error([&] { q->disable_clip(); }, {"TensorQuantizer::disable_clip", "learn_amax"});
  expect_error([] { TensorQuantizer(TensorQuantizerOptions().if_clip(true)); },
               {"enable_clip", "learn_amax"});
  TensorQuantizer learned(QuantDescriptor().learn_amax(true).amax(0.5));
  EXPECT_TRUE(learned->clip_enabled());
  EXPECT_TRUE(learned->clip->clip_value_max.requires_grad());
  learned->disable_clip();
  EXPECT_FALSE(learned->clip->clip_value_max.requires_grad());
  learned->disable_quant();
  learned->enable_clip();
  // Clip stage alone: clamps to [-0.5, 0.5].
  EXPECT_TRUE(torch::equal(learned(torch::tensor({-2.f, 0.25f, 2.f})),
                           torch::tensor({-0.5f, 0.25f, 0.5f})));
}

TEST(TensorQuantizer, InitLearnAmaxCopiesAmaxIntoClip) {
  TensorQuantizer q(QuantDescriptor().learn_amax(true));
  expect_error([&] { q->init_learn_amax(); }, {"init_learn_amax", "no amax"});
  q->set_amax(torch::tensor(3.f));
  q->init_learn_amax();
  EXPECT_EQ(q->clip->clip_value_min.item<float>(), -3.f);
  EXPECT_EQ(q->clip->clip_value_max.item<float>(), 3.f);
  TensorQuantizer plain;
  expect_error([&] { plain->init_learn_amax(); }, {"init_learn_amax", "learn_amax=false"});
}

TEST(TensorQuantizer, AmaxShapeMayNotChange) {
  TensorQuantizer q;
  EXPECT_FALSE(q->has_amax());
  q->set_amax(torch::ones({3, 1}));
  expect_error(
      [&] {
        q->set_amax(torch::ones({4, 1}));
      },
      {"TensorQuantizer::set_amax", "shape", "[3, 1]", "[4, 1]"});
  q->set_amax(torch::full({3, 1}, 2.f));
  EXPECT_TRUE(torch::equal(q->amax(), torch::full({3, 1}, 2.f)));
  EXPECT_TRUE(torch::allclose(q->step_size(), torch::full({3, 1}, 2.f / 127)));
}

TEST(TensorQuantizer, StepSizeAndMaxbound) {
  TensorQuantizer q(QuantDescriptor().num_bits(4).is_unsigned(true));
  EXPECT_EQ(q->maxbound(), 15.0);
  expect_error([&] { q->step_size(); }, {"step_size", "dynamic amax"});
  TensorQuantizer fp8(QuantDescriptor().num_bits(NumBits::e4m3()));
  EXPECT_EQ(fp8->maxbound(), 448.0);
}

TEST(TensorQuantizer, NegativeAxisIsNormalised) {
  // Upstream silently quantizes per tensor for axis=-1; we keep the last dim's own amax.
  const at::Tensor x = torch::randn({4, 3, 5});
  TensorQuantizer neg(QuantDescriptor().axis(-1));
  TensorQuantizer pos(QuantDescriptor().axis(2));
  EXPECT_TRUE(torch::equal(neg(x), pos(x)));
  const at::Tensor amax = x.abs().amax({0, 1}, true);
  EXPECT_TRUE(torch::equal(neg(x), fake_tensor_quant(x, amax, 8, false, false)));
  expect_error(
      [] {
        TensorQuantizer(QuantDescriptor().axis(3))(torch::randn({2, 2}));
      },
      {"TensorQuantizer", "axis 3", "out of range"});
}

TEST(TensorQuantizer, LoadCalibAmaxWithoutDataIsAnErrorUnlessNotStrict) {
  TensorQuantizer q;
  expect_error([&] { q->load_calib_amax(); },
               {"load_calib_amax", "MaxCalibrator", "not seen any tensor", "strict"});
  EXPECT_FALSE(q->has_amax()) << "a failed load leaves no amax behind";
  q->load_calib_amax({}, /*strict=*/false);
  EXPECT_TRUE(std::isnan(q->amax().item<float>()));
  TensorQuantizer hist(QuantDescriptor().calib_method("histogram"));
  hist->enable_calib();
  hist->disable_quant();
  hist(torch::randn({100}));
  expect_error([&] { hist->load_calib_amax(); }, {"compute_amax", "unknown method"});
  expect_error(
      [&] { hist->load_calib_amax(calib::ComputeAmaxOptions("percentile").percentile(101)); },
      {"percentile", "[0, 100]", "101"});
  expect_error([&] { q->load_calib_amax("entropy"); }, {"MaxCalibrator", "entropy"});
}

TEST(TensorQuantizer, SettersReachTheCalibrator) {
  TensorQuantizer q(QuantDescriptor().calib_method("histogram"));
  q->set_num_bits(4);
  q->set_unsigned(true);
  q->set_narrow_range(true);
  EXPECT_EQ(q->calibrator()->num_bits(), NumBits(4));
  EXPECT_TRUE(q->calibrator()->is_unsigned());
  EXPECT_EQ(q->extra_repr(),
            "unsigned 4bit narrow fake per-tensor amax=dynamic calibrator=HistogramCalibrator "
            "scale=1.0 quant");
}

TEST(TensorQuantizer, PreQuantScaleAppliesEvenWhenDisabled) {
  TensorQuantizer q(TensorQuantizerOptions().disabled(true));
  q->set_pre_quant_scale(torch::tensor({2.f}));
  EXPECT_TRUE(torch::equal(q(torch::ones({3})), torch::full({3}, 2.f)));
  expect_error([&] { q->set_pre_quant_scale(torch::ones({2})); }, {"set_pre_quant_scale", "shape"});
}

TEST(TensorQuantizer, RealQuantIsAlwaysNarrow) {
  TensorQuantizer q(QuantDescriptor().fake_quant(false).amax(1.0).narrow_range(false));
  EXPECT_FALSE(q->scale().defined());
  const at::Tensor out = q(torch::tensor({-5.f, 5.f}));
  EXPECT_TRUE(torch::equal(out, torch::tensor({-127.f, 127.f})));
  EXPECT_EQ(q->scale().item<float>(), 127.f);
}

TEST(TensorQuantizer, E4m3UsesScaledE4m3) {
  TensorQuantizer q(QuantDescriptor().num_bits(NumBits::e4m3()).amax(448.0));
  const at::Tensor x = torch::randn({64}) * 100;
  EXPECT_TRUE(torch::equal(q(x), scaled_e4m3(x, torch::tensor(448.f))));
  EXPECT_EQ(q->extra_repr().rfind("(4, 3)bit fake", 0), 0u) << q->extra_repr();
}

TEST(TensorQuantizer, SaveLoadRoundTripKeepsAmaxAndCreatesMissingBuffers) {
  for (const auto& desc :
       {QuantDescriptor().amax(1.5), QuantDescriptor().axis(0).calib_method("histogram"),
        QuantDescriptor().learn_amax(true).amax(0.7), QuantDescriptor().fake_quant(false)}) {
    TensorQuantizer q(desc);
    q->set_amax(desc.axis() ? torch::tensor({1.f, 2.f, 3.f}).reshape({3, 1}) : torch::tensor(0.7f));
    q->set_pre_quant_scale(torch::tensor({0.5f}));
    std::stringstream stream;
    torch::save(q, stream);
    TensorQuantizer fresh(desc.has_amax() ? QuantDescriptor(desc).clear_amax() : desc);
    ASSERT_FALSE(fresh->has_amax());
    torch::load(fresh, stream);
    ASSERT_TRUE(fresh->has_amax()) << desc;
    EXPECT_TRUE(torch::equal(fresh->amax(), q->amax())) << desc;
    EXPECT_TRUE(torch::equal(fresh->pre_quant_scale(), q->pre_quant_scale()));
    const at::Tensor x = torch::randn({3, 4});
    EXPECT_TRUE(torch::equal(fresh(x), q(x))) << desc;
  }
}

TEST(TensorQuantizer, LoadRefusesAStateWithoutAmaxOrWithAnotherShape) {
  TensorQuantizer dynamic;
  std::stringstream no_amax;
  torch::save(dynamic, no_amax);
  TensorQuantizer calibrated(QuantDescriptor().amax(2.0));
  expect_error([&] { torch::load(calibrated, no_amax); }, {"TensorQuantizer::load", "no '_amax'"});
  EXPECT_EQ(calibrated->amax().item<float>(), 2.f);

  TensorQuantizer per_channel;
  per_channel->set_amax(torch::ones({4, 1}));
  std::stringstream four;
  torch::save(per_channel, four);
  TensorQuantizer three;
  three->set_amax(torch::ones({3, 1}));
  expect_error([&] { torch::load(three, four); }, {"'_amax' has shape [4, 1]", "[3, 1]"});
  EXPECT_EQ(three->amax().sizes(), torch::IntArrayRef({3, 1}));
}

TEST(TensorQuantizer, StateNamesAreUpstreams) {
  TensorQuantizer q(QuantDescriptor().learn_amax(true).amax(1.0));
  q->set_pre_quant_scale(torch::ones({1}));
  std::vector<std::string> names;
  for (const auto& item : q->named_parameters()) names.push_back(item.key());
  for (const auto& item : q->named_buffers()) names.push_back(item.key());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"_amax", "_pre_quant_scale", "clip.clip_value_max",
                                             "clip.clip_value_min"}));
}

TEST(TensorQuantizer, CloneIsDeepIncludingTheCalibrator) {
  TensorQuantizer q(QuantDescriptor().calib_method("histogram").learn_amax(true).amax(1.0));
  q->disable_quant();
  q->enable_calib();
  q(torch::randn({1000}));
  auto copy = std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(q->clone());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->extra_repr(), q->extra_repr());
  EXPECT_NE(copy->calibrator(), q->calibrator());
  EXPECT_TRUE(torch::equal(*copy->calibrator()->compute_amax("percentile"),
                           *q->calibrator()->compute_amax("percentile")));
  // Mutating the copy leaves the original alone.
  {
    torch::NoGradGuard no_grad;
    copy->amax().fill_(9.f);
    copy->clip->clip_value_max.fill_(9.f);
  }
  copy->calibrator()->reset();
  EXPECT_EQ(q->amax().item<float>(), 1.f);
  EXPECT_EQ(q->clip->clip_value_max.item<float>(), 1.f);
  EXPECT_TRUE(q->calibrator()->compute_amax("percentile").has_value());
}

TEST(TensorQuantizer, ExportModeUsesAtenFakeQuantize) {
  const at::Tensor x = torch::randn({4, 3, 5, 5});
  TensorQuantizer per_tensor(QuantDescriptor().amax(2.0));
  TensorQuantizer per_channel(QuantDescriptor().axis(1));
  per_channel->set_amax(torch::tensor({1.f, 2.f, 3.f}).reshape({1, 3, 1, 1}));
  nn::TensorQuantizerImpl::set_use_fb_fake_quant(true);
  const at::Tensor a = per_tensor(x);
  const at::Tensor b = per_channel(x);
  nn::TensorQuantizerImpl::set_use_fb_fake_quant(false);
  EXPECT_TRUE(torch::equal(a, at::fake_quantize_per_tensor_affine(x, 2.0 / 127, 0, -128, 127)));
  EXPECT_TRUE(torch::equal(
      b, at::fake_quantize_per_channel_affine(x, torch::tensor({1.f, 2.f, 3.f}) / 127,
                                              torch::zeros({3}, torch::kInt), 1, -128, 127)));
  EXPECT_FALSE(nn::TensorQuantizerImpl::use_fb_fake_quant());
}

TEST(TensorQuantizer, ExportModeRejectsHalfAndMultiAxis) {
  TensorQuantizer multi(QuantDescriptor().axis(std::vector<int64_t>{0, 1}));
  multi->set_amax(torch::ones({2, 3, 1}));
  TensorQuantizer half(QuantDescriptor().amax(1.0));
  nn::TensorQuantizerImpl::set_use_fb_fake_quant(true);
  expect_error([&] { multi(torch::randn({2, 3, 4})); }, {"single quantization axis", "[2, 3, 1]"});
  expect_error([&] { half(torch::randn({4}).to(torch::kHalf)); }, {"fp16"});
  nn::TensorQuantizerImpl::set_use_fb_fake_quant(false);
}

TEST(TensorQuantizer, DynamicAmaxGradientIsStraightThrough) {
  TensorQuantizer q;
  at::Tensor x = torch::randn({16}, torch::requires_grad());
  q(x).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::ones({16})));
}

}  // namespace
}  // namespace torchquant
