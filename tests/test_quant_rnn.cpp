// QuantLSTM and QuantLSTMCell: the h_lstm reference cases of pytorch_quantization 2.2.1 (outputs,
// h_n, c_n, input / weight / bias gradients), the cell against a hand computation, float equality,
// state names, save / load, clone, from_float, printing and argument errors.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "reference.h"
#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/nn/modules/quant_rnn.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::all_close;
using testing::expect_error;
using testing::RefCase;

// quant_modules deactivated for a scope, re-activated afterwards even on failure.
struct Deactivated {
  Deactivated() { nn::quant_modules::deactivate(); }
  ~Deactivated() { nn::quant_modules::initialize(); }
};

std::vector<std::string> keys_of(const torch::OrderedDict<std::string, at::Tensor>& dict) {
  std::vector<std::string> keys;
  for (const auto& item : dict) keys.push_back(item.key());
  return keys;
}

// -- reference cases -----------------------------------------------------------------------------

std::vector<RefCase> lstm_cases() {
  std::vector<RefCase> cases;
  for (auto& c : testing::reference_cases("h_modules")) {
    if (c.name.rfind("h_lstm", 0) == 0) cases.push_back(std::move(c));
  }
  return cases;
}

TEST(QuantLSTMReference, BothCasesArePresent) { EXPECT_EQ(lstm_cases().size(), 2u); }

class QuantLSTMReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(QuantLSTMReference, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  const auto& params = c.meta["params"];
  const auto& kwargs = params["kwargs"];
  auto options =
      torch::nn::LSTMOptions(params["args"][0].get<int64_t>(), params["args"][1].get<int64_t>());
  if (kwargs.contains("num_layers")) options.num_layers(kwargs["num_layers"].get<int64_t>());
  if (kwargs.contains("bidirectional")) options.bidirectional(kwargs["bidirectional"].get<bool>());
  if (kwargs.contains("batch_first")) options.batch_first(kwargs["batch_first"].get<bool>());
  nn::QuantLSTM lstm(options);
  ASSERT_TRUE(params["training"].get<bool>());
  lstm->train();

  // The default quantizers are upstream's.
  const auto& input_reprs = params["input_quantizers"];
  const auto& weight_reprs = params["weight_quantizers"];
  ASSERT_EQ(lstm->_input_quantizers->size(), input_reprs.size());
  for (size_t i = 0; i < input_reprs.size(); ++i) {
    EXPECT_EQ(lstm->_input_quantizers->ptr<nn::TensorQuantizerImpl>(i)->extra_repr(),
              input_reprs[i].get<std::string>());
    EXPECT_EQ(lstm->_weight_quantizers->ptr<nn::TensorQuantizerImpl>(i)->extra_repr(),
              weight_reprs[i].get<std::string>());
  }

  // Every parameter of the layer comes from the case (names and shapes are upstream's).
  size_t loaded = 0;
  for (auto& p : lstm->named_parameters(/*recurse=*/false)) {
    const at::Tensor value = c.tensor("param_" + p.key());
    ASSERT_EQ(p.value().sizes(), value.sizes()) << p.key();
    torch::NoGradGuard no_grad;
    p.value().copy_(value);
    ++loaded;
  }
  size_t case_params = 0;
  for (const auto& t : c.meta["tensors"].items()) case_params += t.key().rfind("param_", 0) == 0;
  EXPECT_EQ(loaded, case_params);

  const at::Tensor x = c.tensor("input").clone().requires_grad_(true);
  std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>> result;
  if (c.has("h0")) {
    result = lstm(x, std::make_tuple(c.tensor("h0"), c.tensor("c0")));
  } else {
    result = lstm(x);
  }
  const auto& [output, state] = result;
  const auto& [h_n, c_n] = state;
  const double atol = c.atol();
  const double rtol = c.rtol();
  EXPECT_TRUE(all_close(output.detach(), c.tensor("expected_output0"), atol, rtol));
  EXPECT_TRUE(all_close(h_n.detach(), c.tensor("expected_output1"), atol, rtol));
  EXPECT_TRUE(all_close(c_n.detach(), c.tensor("expected_output2"), atol, rtol));

  output.sum().backward();
  EXPECT_TRUE(all_close(x.grad(), c.tensor("expected_grad_input"), atol, rtol));
  for (const auto& p : lstm->named_parameters(/*recurse=*/false)) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(all_close(p.value().grad(), c.tensor("expected_grad_" + p.key()), atol, rtol))
        << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(H, QuantLSTMReference, ::testing::ValuesIn(lstm_cases()),
                         [](const auto& info) { return testing::case_name(info.param); });

// -- the cell ------------------------------------------------------------------------------------

TEST(QuantLSTMCell, MatchesAHandComputation) {
  torch::manual_seed(0);
  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(5, 3));
  const at::Tensor x = torch::randn({4, 5});
  const at::Tensor h = torch::randn({4, 3});
  const at::Tensor c = torch::randn({4, 3});
  const auto [h1, c1] = cell(x, std::make_tuple(h, c));

  // Input: per tensor on cat([x, h]); weight: per row on cat([w_ih, w_hh]); 8 bit, full range.
  const at::Tensor xh = torch::cat({x, h}, 1);
  const at::Tensor xh_q = fake_tensor_quant(xh, xh.abs().max(), 8, false, false);
  const at::Tensor w = torch::cat({cell->weight_ih, cell->weight_hh}, 1).detach();
  const at::Tensor w_q = fake_tensor_quant(w, w.abs().amax({1}, true), 8, false, false);
  const at::Tensor gates =
      torch::linear(xh_q.narrow(1, 0, 5), w_q.narrow(1, 0, 5), cell->bias_ih.detach()) +
      torch::linear(xh_q.narrow(1, 5, 3), w_q.narrow(1, 5, 3), cell->bias_hh.detach());
  const auto g = gates.chunk(4, 1);
  const at::Tensor c_expected = torch::sigmoid(g[1]) * c + torch::sigmoid(g[0]) * torch::tanh(g[2]);
  const at::Tensor h_expected = torch::sigmoid(g[3]) * torch::tanh(c_expected);
  EXPECT_TRUE(all_close(h1.detach(), h_expected, 1e-6, 1e-6));
  EXPECT_TRUE(all_close(c1.detach(), c_expected, 1e-6, 1e-6));
  // The operands really are quantized: the float cell differs.
  const auto [hf, cf] =
      torch::lstm_cell(x, {h, c}, cell->weight_ih, cell->weight_hh, cell->bias_ih, cell->bias_hh);
  EXPECT_GT((hf - h1).abs().max().item<double>(), 1e-4);

  // Without a state it starts from zeros; gradients reach every parameter and the input.
  const at::Tensor xg = x.clone().requires_grad_(true);
  const auto [h2, c2] = cell(xg);
  const auto [h3, c3] = cell(x, std::make_tuple(torch::zeros({4, 3}), torch::zeros({4, 3})));
  EXPECT_TRUE(torch::equal(h2, h3));
  EXPECT_TRUE(torch::equal(c2, c3));
  (h2.sum() + c2.sum()).backward();
  EXPECT_TRUE(xg.grad().defined());
  for (const auto& p : cell->parameters()) EXPECT_TRUE(p.grad().defined());
}

TEST(QuantLSTMCell, EqualsTheFloatCellWhenDeactivatedAndHasItsWeights) {
  for (bool bias : {true, false}) {
    const auto options = torch::nn::LSTMCellOptions(6, 4).bias(bias);
    torch::manual_seed(3);
    torch::nn::LSTMCell fcell(options);
    torch::manual_seed(3);
    nn::QuantLSTMCell qcell(options);
    EXPECT_EQ(keys_of(qcell->named_parameters(false)), keys_of(fcell->named_parameters(false)));
    for (const auto& p : fcell->named_parameters(false)) {
      EXPECT_TRUE(torch::equal(p.value(), qcell->named_parameters(false)[p.key()])) << p.key();
    }
    EXPECT_EQ(qcell->bias_ih.defined(), bias);

    const at::Tensor x = torch::randn({3, 6});
    const auto hc = std::make_tuple(torch::randn({3, 4}), torch::randn({3, 4}));
    const auto [hf, cf] = fcell(x, hc);
    Deactivated off;
    const auto [hq, cq] = qcell(x, hc);
    EXPECT_TRUE(all_close(hq, hf, 0, 0));
    EXPECT_TRUE(all_close(cq, cf, 0, 0));
  }
  EXPECT_TRUE(nn::quant_modules::is_active());
}

TEST(QuantLSTMCell, StepsOfTheCellEqualOneLayerOfQuantLSTM) {
  torch::manual_seed(5);
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4));
  auto cell = nn::QuantLSTMCell(torch::nn::LSTMCellOptions(3, 4));
  {
    torch::NoGradGuard no_grad;
    cell->weight_ih.copy_(lstm->named_parameters()["weight_ih_l0"]);
    cell->weight_hh.copy_(lstm->named_parameters()["weight_hh_l0"]);
    cell->bias_ih.copy_(lstm->named_parameters()["bias_ih_l0"]);
    cell->bias_hh.copy_(lstm->named_parameters()["bias_hh_l0"]);
  }
  const at::Tensor x = torch::randn({5, 2, 3});
  const auto [y, state] = lstm(x);
  at::Tensor h = torch::zeros({2, 4});
  at::Tensor c = torch::zeros({2, 4});
  for (int64_t t = 0; t < 5; ++t) {
    std::tie(h, c) = cell(x[t], std::make_tuple(h, c));
    EXPECT_TRUE(torch::equal(y[t], h)) << "step " << t;
  }
  EXPECT_TRUE(torch::equal(std::get<0>(state)[0], h));
  EXPECT_TRUE(torch::equal(std::get<1>(state)[0], c));
}

// -- QuantLSTM beyond the reference cases -------------------------------------------------------

std::vector<torch::nn::LSTMOptions> lstm_variants() {
  using torch::nn::LSTMOptions;
  return {LSTMOptions(5, 4), LSTMOptions(5, 4).num_layers(2),
          LSTMOptions(3, 5).bidirectional(true).batch_first(true),
          LSTMOptions(4, 3).num_layers(3).bidirectional(true).bias(false),
          LSTMOptions(4, 3).num_layers(2).batch_first(true).bias(false)};
}

TEST(QuantLSTM, SameSeedGivesTheFloatLSTMsParameters) {
  for (const auto& options : lstm_variants()) {
    torch::manual_seed(11);
    torch::nn::LSTM flstm(options);
    torch::manual_seed(11);
    nn::QuantLSTM qlstm(options);
    EXPECT_EQ(keys_of(qlstm->named_parameters(false)), keys_of(flstm->named_parameters(false)));
    for (const auto& p : flstm->named_parameters(false)) {
      EXPECT_TRUE(torch::equal(p.value(), qlstm->named_parameters(false)[p.key()])) << p.key();
    }
    EXPECT_EQ(qlstm->flat_weights().size(), flstm->all_weights().size());
    const at::Tensor after_quant = torch::rand({3});
    torch::manual_seed(11);
    torch::nn::LSTM again(options);
    EXPECT_TRUE(torch::equal(after_quant, torch::rand({3})));  // the same numbers were drawn
  }
}

TEST(QuantLSTM, EqualsTheFloatLSTMWhenDeactivated) {
  for (const auto& options : lstm_variants()) {
    torch::manual_seed(2);
    torch::nn::LSTM flstm(options);
    auto qlstm = nn::QuantLSTM(nn::QuantLSTMImpl::from_float(
        std::dynamic_pointer_cast<torch::nn::LSTMImpl>(flstm->clone())));
    const int64_t d = options.bidirectional() ? 2 : 1;
    const at::Tensor x = options.batch_first() ? torch::randn({2, 6, options.input_size()})
                                               : torch::randn({6, 2, options.input_size()});
    const std::vector<int64_t> state_shape{options.num_layers() * d, 2, options.hidden_size()};
    const auto hc = std::make_tuple(torch::randn(state_shape), torch::randn(state_shape));
    const at::Tensor xf = x.clone().requires_grad_(true);
    const auto [yf, sf] = flstm(xf, hc);
    yf.sum().backward();
    Deactivated off;
    const at::Tensor xq = x.clone().requires_grad_(true);
    const auto [yq, sq] = qlstm(xq, hc);
    yq.sum().backward();
    EXPECT_TRUE(all_close(yq, yf, 0, 0));
    EXPECT_TRUE(all_close(std::get<0>(sq), std::get<0>(sf), 0, 0));
    EXPECT_TRUE(all_close(std::get<1>(sq), std::get<1>(sf), 0, 0));
    EXPECT_TRUE(all_close(xq.grad(), xf.grad(), 0, 0));
    for (const auto& p : flstm->named_parameters(false)) {
      EXPECT_TRUE(all_close(qlstm->named_parameters(false)[p.key()].grad(), p.value().grad(), 0, 0))
          << p.key();
    }
  }
  EXPECT_TRUE(nn::quant_modules::is_active());
}

TEST(QuantLSTM, WithDisabledQuantizersItIsTheFloatLSTMDropoutIncluded) {
  // Our step loop (active, quantizers disabled) against ATen's LSTM: the same math up to
  // summation order, and the same dropout masks between layers under the same seed.
  for (auto options : lstm_variants()) {
    options.dropout(options.num_layers() > 1 ? 0.3 : 0.0);
    torch::manual_seed(4);
    torch::nn::LSTM flstm(options);
    torch::manual_seed(4);
    nn::QuantLSTM qlstm(options);
    for (const auto& m : *qlstm->_input_quantizers) m->as<nn::TensorQuantizerImpl>()->disable();
    for (const auto& m : *qlstm->_weight_quantizers) m->as<nn::TensorQuantizerImpl>()->disable();
    const at::Tensor x = torch::randn({7, 7, options.input_size()});
    torch::manual_seed(9);
    const at::Tensor yf = std::get<0>(flstm(x));
    torch::manual_seed(9);
    const at::Tensor yq = std::get<0>(qlstm(x));
    EXPECT_TRUE(all_close(yq, yf, 1e-6, 1e-5));
    flstm->eval();
    qlstm->eval();
    EXPECT_TRUE(all_close(std::get<0>(qlstm(x)), std::get<0>(flstm(x)), 1e-6, 1e-5));
  }
}

TEST(QuantLSTM, BatchFirstIsATranspose) {
  torch::manual_seed(8);
  nn::QuantLSTM a(torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  auto b = nn::QuantLSTM(std::dynamic_pointer_cast<nn::QuantLSTMImpl>(a->clone()));  // same weights
  b->options.batch_first(true);
  const at::Tensor x = torch::randn({5, 2, 3});
  const auto [ya, sa] = a(x);
  const auto [yb, sb] = b(x.transpose(0, 1));
  EXPECT_TRUE(torch::equal(ya, yb.transpose(0, 1)));
  EXPECT_TRUE(torch::equal(std::get<0>(sa), std::get<0>(sb)));
  EXPECT_TRUE(torch::equal(std::get<1>(sa), std::get<1>(sb)));
}

TEST(QuantLSTM, WeightQuantizerCalibratesAtEveryStepAsUpstream) {
  // Quantizing the fused weight once per forward gives upstream's result; while calibrating, the
  // calibrator sees it at every step, as upstream's does (the histogram counts match).
  nn::QuantLSTM lstm(
      torch::nn::LSTMOptions(3, 4),
      nn::QuantLayerOptions().quant_desc_weight(QuantDescriptor().calib_method("histogram")));
  auto wq = lstm->weight_quantizer(0);
  wq->disable_quant();
  wq->enable_calib();
  lstm(torch::randn({6, 2, 3}));
  const auto* calib = dynamic_cast<const calib::HistogramCalibrator*>(wq->calibrator());
  ASSERT_NE(calib, nullptr);
  int64_t total = 0;
  for (int64_t n : calib->histogram().counts) total += n;
  EXPECT_EQ(total, 6 * 16 * (3 + 4));
}

TEST(QuantLSTM, WeightAmaxIsPerRowOfTheFusedWeight) {
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4).bidirectional(true));
  for (int64_t d = 0; d < 2; ++d) {
    auto wq = lstm->weight_quantizer(0, d);
    wq->disable_quant();
    wq->enable_calib();
  }
  lstm(torch::randn({2, 1, 3}));
  const auto params = lstm->named_parameters();
  for (int64_t d = 0; d < 2; ++d) {
    auto wq = lstm->weight_quantizer(0, d);
    wq->load_calib_amax();
    const std::string s = d == 1 ? "_reverse" : "";
    const at::Tensor fused =
        torch::cat({params["weight_ih_l0" + s], params["weight_hh_l0" + s]}, 1);
    EXPECT_TRUE(all_close(wq->amax().flatten(), fused.abs().amax({1}).detach(), 0, 0));
  }
}

// -- state, save / load, clone, from_float -------------------------------------------------------

TEST(QuantLSTM, StateNamesAreUpstreams) {
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  for (int64_t l = 0; l < 2; ++l) {
    for (int64_t d = 0; d < 2; ++d) {
      lstm->input_quantizer(l, d)->set_amax(1.5);
      lstm->weight_quantizer(l, d)->set_amax(torch::full({16, 1}, 0.5));
    }
  }
  std::vector<std::string> expected;
  for (const char* layer : {"l0", "l0_reverse", "l1", "l1_reverse"}) {
    for (const char* kind : {"weight_ih_", "weight_hh_", "bias_ih_", "bias_hh_"}) {
      expected.push_back(std::string(kind) + layer);
    }
  }
  EXPECT_EQ(keys_of(lstm->named_parameters()), expected);
  EXPECT_EQ(keys_of(lstm->named_buffers()),
            (std::vector<std::string>{"_input_quantizers.0._amax", "_input_quantizers.1._amax",
                                      "_input_quantizers.2._amax", "_input_quantizers.3._amax",
                                      "_weight_quantizers.0._amax", "_weight_quantizers.1._amax",
                                      "_weight_quantizers.2._amax", "_weight_quantizers.3._amax"}));
  EXPECT_EQ(lstm->input_quantizer(1, 1).ptr(),
            lstm->_input_quantizers->ptr<nn::TensorQuantizerImpl>(3));

  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(3, 4));
  cell->_input_quantizer->set_amax(1.0);
  cell->_weight_quantizer->set_amax(torch::full({16, 1}, 0.5));
  EXPECT_EQ(keys_of(cell->named_parameters()),
            (std::vector<std::string>{"weight_ih", "weight_hh", "bias_ih", "bias_hh"}));
  EXPECT_EQ(keys_of(cell->named_buffers()),
            (std::vector<std::string>{"_input_quantizer._amax", "_weight_quantizer._amax"}));
}

TEST(QuantLSTM, SaveLoadRoundTrip) {
  torch::manual_seed(1);
  const auto options = torch::nn::LSTMOptions(3, 4).num_layers(2);
  nn::QuantLSTM lstm(options);
  for (int64_t l = 0; l < 2; ++l) {
    lstm->input_quantizer(l)->set_amax(2.0 + l);
    lstm->weight_quantizer(l)->set_amax(torch::rand({16, 1}) + 0.1);
  }
  const std::string path = ::testing::TempDir() + "quant_lstm_roundtrip.pt";
  torch::save(lstm, path);

  torch::manual_seed(2);
  nn::QuantLSTM loaded(options);  // other weights, dynamic amax
  torch::load(loaded, path);
  std::remove(path.c_str());
  const auto a = lstm->named_parameters();
  for (const auto& p : loaded->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), a[p.key()])) << p.key();
  }
  const auto b = lstm->named_buffers();
  ASSERT_EQ(keys_of(loaded->named_buffers()), keys_of(b));
  for (const auto& buf : loaded->named_buffers()) {
    EXPECT_TRUE(torch::equal(buf.value(), b[buf.key()])) << buf.key();
  }
  const at::Tensor x = torch::randn({4, 2, 3});
  EXPECT_TRUE(torch::equal(std::get<0>(loaded(x)), std::get<0>(lstm(x))));

  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(3, 4));
  cell->_input_quantizer->set_amax(3.0);
  const std::string cell_path = ::testing::TempDir() + "quant_lstm_cell_roundtrip.pt";
  torch::save(cell, cell_path);
  nn::QuantLSTMCell cell2(torch::nn::LSTMCellOptions(3, 4));
  torch::load(cell2, cell_path);
  std::remove(cell_path.c_str());
  EXPECT_TRUE(torch::equal(cell2->weight_ih, cell->weight_ih));
  EXPECT_TRUE(torch::equal(cell2->bias_hh, cell->bias_hh));
  EXPECT_TRUE(torch::equal(cell2->_input_quantizer->amax(), cell->_input_quantizer->amax()));
}

TEST(QuantLSTM, CloneIsDeep) {
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4).bidirectional(true));
  lstm->input_quantizer(0, 1)->set_amax(1.25);
  lstm->weight_quantizer(0)->disable();
  const at::Tensor x = torch::randn({3, 2, 3});
  const at::Tensor y = std::get<0>(lstm(x));

  auto copy = std::dynamic_pointer_cast<nn::QuantLSTMImpl>(lstm->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(torch::equal(std::get<0>(copy->forward(x)), y));
  EXPECT_FALSE(copy->weight_quantizer(0)->is_enabled());
  EXPECT_TRUE(torch::equal(copy->input_quantizer(0, 1)->amax(), torch::tensor(1.25f)));
  EXPECT_NE(copy->input_quantizer(0, 1).ptr(), lstm->input_quantizer(0, 1).ptr());

  const at::Tensor before = lstm->named_parameters()["weight_ih_l0"].clone();
  {
    torch::NoGradGuard no_grad;
    copy->named_parameters()["weight_ih_l0"].add_(1.0);
  }
  copy->input_quantizer(0, 1)->set_amax(9.0);
  copy->weight_quantizer(0)->enable();
  EXPECT_TRUE(torch::equal(lstm->named_parameters()["weight_ih_l0"], before));
  EXPECT_TRUE(torch::equal(lstm->input_quantizer(0, 1)->amax(), torch::tensor(1.25f)));
  EXPECT_FALSE(lstm->weight_quantizer(0)->is_enabled());
  EXPECT_TRUE(torch::equal(std::get<0>(lstm(x)), y));

  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(3, 4));
  cell->_weight_quantizer->set_amax(torch::full({16, 1}, 0.5));
  auto cell_copy = std::dynamic_pointer_cast<nn::QuantLSTMCellImpl>(cell->clone());
  {
    torch::NoGradGuard no_grad;
    cell_copy->weight_hh.add_(1.0);
    cell_copy->_weight_quantizer->amax().fill_(2.0);
  }
  EXPECT_FALSE(torch::equal(cell_copy->weight_hh, cell->weight_hh));
  EXPECT_TRUE(cell_copy->weight_hh.is_same(cell_copy->named_parameters()["weight_hh"]));
  EXPECT_TRUE(torch::equal(cell->_weight_quantizer->amax(), torch::full({16, 1}, 0.5)));
}

TEST(QuantLSTM, FromFloatSharesTheTensors) {
  torch::nn::LSTM flstm(torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  torch::manual_seed(21);
  const at::Tensor expected_draw = torch::rand({2});
  torch::manual_seed(21);
  auto qlstm = nn::QuantLSTMImpl::from_float(flstm.ptr());
  EXPECT_TRUE(torch::equal(torch::rand({2}), expected_draw));  // no random numbers drawn
  const auto fparams = flstm->named_parameters();
  ASSERT_EQ(keys_of(qlstm->named_parameters()), keys_of(fparams));
  for (const auto& p : qlstm->named_parameters()) {
    EXPECT_TRUE(p.value().is_same(fparams[p.key()])) << p.key();
  }
  {
    torch::NoGradGuard no_grad;
    fparams["weight_hh_l1_reverse"].fill_(0.25);
  }
  EXPECT_TRUE(
      torch::equal(qlstm->named_parameters()["weight_hh_l1_reverse"], torch::full({16, 4}, 0.25)));
  EXPECT_EQ(qlstm->_input_quantizers->size(), 4u);
  // Descriptors given to from_float are used.
  auto hist = nn::QuantLSTMImpl::from_float(
      flstm.ptr(),
      nn::QuantLayerOptions().quant_desc_input(QuantDescriptor().calib_method("histogram")));
  EXPECT_EQ(hist->input_quantizer(1, 1)->calibrator()->name(), "HistogramCalibrator");
  EXPECT_EQ(hist->weight_quantizer(1, 1)->calibrator()->name(), "MaxCalibrator");

  for (bool bias : {true, false}) {
    torch::nn::LSTMCell fcell(torch::nn::LSTMCellOptions(3, 4).bias(bias));
    auto qcell = nn::QuantLSTMCellImpl::from_float(fcell.ptr());
    EXPECT_TRUE(qcell->weight_ih.is_same(fcell->weight_ih));
    EXPECT_TRUE(qcell->named_parameters()["weight_hh"].is_same(fcell->weight_hh));
    EXPECT_EQ(qcell->bias_ih.defined(), bias);
    {
      torch::NoGradGuard no_grad;
      qcell->weight_ih.mul_(2.0);
    }
    EXPECT_TRUE(torch::equal(qcell->weight_ih, fcell->weight_ih));
  }
  expect_error([] { nn::QuantLSTMImpl::from_float(nullptr); },
               {"QuantLSTM::from_float", "null module"});
}

TEST(QuantLSTM, DefaultDescriptorsAndOptions) {
  {
    nn::ScopedDefaultQuantDesc<nn::QuantLSTMImpl> guard(QuantDescriptor().calib_method("histogram"),
                                                        QuantDescriptor().num_bits(4).axis(0));
    nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4));
    EXPECT_EQ(lstm->input_quantizer(0)->calibrator()->name(), "HistogramCalibrator");
    EXPECT_EQ(lstm->weight_quantizer(0)->num_bits(), NumBits(4));
    EXPECT_EQ(*lstm->quant_options.quant_desc_weight(), QuantDescriptor().num_bits(4).axis(0));
    nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(3, 4));  // its own class defaults
    EXPECT_EQ(cell->_input_quantizer->calibrator()->name(), "MaxCalibrator");
  }
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4));
  EXPECT_EQ(*lstm->quant_options.quant_desc_input(), QUANT_DESC_8BIT_PER_TENSOR());
  EXPECT_EQ(*lstm->quant_options.quant_desc_weight(), QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW());
  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(3, 4),
                         nn::QuantLayerOptions().quant_desc_input(QuantDescriptor().num_bits(6)));
  EXPECT_EQ(cell->_input_quantizer->num_bits(), NumBits(6));
  EXPECT_EQ(*cell->quant_options.quant_desc_weight(), QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW());
}

TEST(QuantLSTM, WorksAsAnAnyModuleWithItsDefaultState) {
  torch::nn::AnyModule any(nn::QuantLSTM(torch::nn::LSTMOptions(3, 4)));
  const auto out = any.forward<std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>>>(
      torch::randn({2, 1, 3}));
  EXPECT_EQ(std::get<0>(out).sizes(), (std::vector<int64_t>{2, 1, 4}));
  torch::nn::AnyModule any_cell(nn::QuantLSTMCell(torch::nn::LSTMCellOptions(3, 4)));
  const auto h = any_cell.forward<std::tuple<at::Tensor, at::Tensor>>(torch::randn({2, 3}));
  EXPECT_EQ(std::get<0>(h).sizes(), (std::vector<int64_t>{2, 4}));
}

TEST(QuantLSTM, EmptySequence) {
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(3, 4).bidirectional(true));
  const auto h0 = torch::randn({2, 2, 4});
  const auto [y, state] = lstm(torch::randn({0, 2, 3}), std::make_tuple(h0, h0));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{0, 2, 8}));
  EXPECT_TRUE(torch::equal(std::get<0>(state), h0));
}

// -- printing and errors -------------------------------------------------------------------------

TEST(QuantLSTM, PrettyPrintMirrorsLibTorch) {
  auto text = [](const torch::nn::Module& m) {
    std::ostringstream s;
    m.pretty_print(s);
    return s.str();
  };
  const auto options = torch::nn::LSTMOptions(5, 4).num_layers(2);
  const std::string float_text = text(*torch::nn::LSTM(options));
  EXPECT_EQ(text(*nn::QuantLSTM(options)),
            "torchquant::nn::QuantLSTM" + float_text.substr(std::string("torch::nn::LSTM").size()));
  EXPECT_EQ(text(*nn::QuantLSTM(options)),
            "torchquant::nn::QuantLSTM(input_size=5, hidden_size=4, num_layers=2, bias=true, "
            "batch_first=false, dropout=0, bidirectional=false)");
  const auto other = torch::nn::LSTMOptions(3, 5)
                         .bidirectional(true)
                         .batch_first(true)
                         .bias(false)
                         .dropout(0.25)
                         .num_layers(2);
  EXPECT_EQ(text(*nn::QuantLSTM(other)),
            "torchquant::nn::QuantLSTM" +
                text(*torch::nn::LSTM(other)).substr(std::string("torch::nn::LSTM").size()));
  EXPECT_EQ(text(*nn::QuantLSTMCell(torch::nn::LSTMCellOptions(5, 4))),
            "torchquant::nn::QuantLSTMCell(5, 4)");
  EXPECT_EQ(text(*nn::QuantLSTMCell(torch::nn::LSTMCellOptions(5, 4).bias(false))),
            "torchquant::nn::QuantLSTMCell(5, 4, bias=false)");

  std::ostringstream full;
  full << *nn::QuantLSTM(options);
  const std::string s = full.str();
  EXPECT_NE(s.find("(_input_quantizers): torch::nn::ModuleList(\n    (0): "
                   "TensorQuantizer(8bit fake per-tensor amax=dynamic calibrator=MaxCalibrator "
                   "scale=1.0 quant)"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("(_weight_quantizers): torch::nn::ModuleList(\n    (0): "
                   "TensorQuantizer(8bit fake axis=0 amax=dynamic calibrator=MaxCalibrator "
                   "scale=1.0 quant)"),
            std::string::npos)
      << s;
}

TEST(QuantLSTM, ArgumentErrors) {
  nn::QuantLSTM lstm(torch::nn::LSTMOptions(5, 4).num_layers(2));
  expect_error(
      [&] {
        lstm(torch::randn({7, 5}));
      },
      {"QuantLSTM::forward", "expected a 3-D input [seq_len, batch, input_size]",
       "got a 2-D input of shape [7, 5]"});
  expect_error(
      [&] {
        lstm(torch::randn({2, 3, 6}));
      },
      {"QuantLSTM::forward", "input.size(-1) is 6 but input_size is 5"});
  expect_error(
      [&] {
        lstm(torch::randn({2, 3, 5}),
             std::make_tuple(torch::zeros({1, 3, 4}), torch::zeros({2, 3, 4})));
      },
      {"QuantLSTM::forward", "expected h_0 of shape [2, 3, 4]",
       "num_layers * num_directions, batch, hidden_size", "got [1, 3, 4]"});
  expect_error(
      [&] {
        lstm(torch::randn({2, 3, 5}),
             std::make_tuple(torch::zeros({2, 3, 4}), torch::zeros({2, 2, 4})));
      },
      {"QuantLSTM::forward", "expected c_0 of shape [2, 3, 4]", "got [2, 2, 4]"});
  {
    Deactivated off;  // checked before either path
    expect_error([&] { lstm(torch::randn({2, 3, 6})); }, {"QuantLSTM::forward", "input_size"});
  }
  nn::QuantLSTM bf(torch::nn::LSTMOptions(5, 4).batch_first(true));
  expect_error(
      [&] {
        bf(torch::randn({1, 2, 3, 5}));
      },
      {"expected a 3-D input [batch, seq_len, input_size]", "4-D"});
  expect_error([] { nn::QuantLSTM(torch::nn::LSTMOptions(5, 4).proj_size(2)); },
               {"QuantLSTM", "proj_size=2 is not supported"});
  expect_error([] { nn::QuantLSTM(torch::nn::LSTMOptions(5, 4).dropout(1.5)); },
               {"QuantLSTM", "dropout must be in [0, 1], got 1.5"});
  expect_error([] { nn::QuantLSTM(torch::nn::LSTMOptions(5, 4).num_layers(0)); },
               {"QuantLSTM", "num_layers must be positive, got 0"});
  expect_error([&] { lstm->input_quantizer(2); },
               {"QuantLSTM::input_quantizer", "layer 2 is out of range [0, 2)"});
  expect_error([&] { lstm->weight_quantizer(0, 1); },
               {"QuantLSTM::weight_quantizer", "direction 1 is out of range [0, 1)"});

  nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(5, 4));
  expect_error(
      [&] {
        cell(torch::randn({2, 3, 5}));
      },
      {"QuantLSTMCell::forward", "expected a 2-D input [batch, input_size]",
       "got a 3-D input of shape [2, 3, 5]"});
  expect_error(
      [&] {
        cell(torch::randn({3, 6}));
      },
      {"QuantLSTMCell::forward", "input.size(1) is 6 but input_size is 5"});
  expect_error(
      [&] {
        cell(torch::randn({3, 5}), std::make_tuple(torch::zeros({2, 4}), torch::zeros({3, 4})));
      },
      {"QuantLSTMCell::forward", "expected h_0 of shape [3, 4]", "batch, hidden_size",
       "got [2, 4]"});
  expect_error(
      [&] {
        cell(torch::randn({3, 5}), std::make_tuple(torch::zeros({3, 4}), at::Tensor()));
      },
      {"QuantLSTMCell::forward", "c_0 is an undefined tensor"});
}

}  // namespace
}  // namespace torchquant
