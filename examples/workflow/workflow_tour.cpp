// The model-level workflow of docs/workflow.md, end to end on a small residual network: every
// code block of that page is a region of this file between `// [name]` and `// [end name]`
// (scripts/check-doc-snippets.py, run by ctest, keeps them equal), and this program runs in ctest,
// checking what each step did.

#include <torch/torch.h>
#include <torchquant/optim/helpers.h>
#include <torchquant/torchquant.h>
#include <torchquant/utils/calib_cache.h>
#include <torchquant/utils/calibrate.h>
#include <torchquant/utils/checkpoint.h>
#include <torchquant/utils/quantizers.h>
#include <torchquant/utils/sensitivity.h>
#include <torchquant/utils/share.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace tq = torchquant;

// A residual block and a head, written with torchquant's quant layers.
struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1",
                              tq::nn::QuantConv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)))),
        conv2(register_module("conv2",
                              tq::nn::QuantConv2d(torch::nn::Conv2dOptions(8, 8, 3).padding(1)))),
        add(register_module("add", tq::nn::QuantAdd())),
        fc(register_module("fc", tq::nn::QuantLinear(torch::nn::LinearOptions(8, 4)))) {}
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = torch::relu(conv1(x));
    y = torch::relu(add(conv2(y), y));
    return fc(y.mean({2, 3}));
  }
  tq::nn::QuantConv2d conv1, conv2;
  tq::nn::QuantAdd add;
  tq::nn::QuantLinear fc;
};
TORCH_MODULE(Net);

int main() {
  torch::manual_seed(0);
  const std::string dir =
      (std::filesystem::temp_directory_path() / "torchquant_workflow_tour").string();
  std::filesystem::create_directories(dir);
  Net model;
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(torch::randn({16, 3, 8, 8}));

  // [walk]
  // Every TensorQuantizer with upstream's dotted name, e.g. "conv1._input_quantizer".
  for (const auto& q : tq::utils::named_quantizers(*model)) std::cout << q.name << '\n';
  // Selections: exact names, glob, regex, a predicate or a subtree.
  const auto weights = tq::utils::QuantizerSelector::glob("*._weight_quantizer");
  tq::utils::disable_quantization(*model, tq::utils::QuantizerSelector::under("fc"));
  tq::utils::enable_quantization(*model, tq::utils::QuantizerSelector::under("fc"));
  tq::utils::set_quantizer_attributes(
      *model, weights, tq::utils::QuantizerAttributes().num_bits(8).axis(std::vector<int64_t>{0}));
  // [end walk]
  TORCH_CHECK(tq::utils::named_quantizers(*model).size() == 8, "expected 8 quantizers");
  TORCH_CHECK(tq::utils::select_quantizers(*model, weights).size() == 3, "expected 3 weights");

  // [share]
  // Both inputs of the residual add use one quantizer (one scale, so TensorRT fuses the add).
  tq::utils::share_quantizer(*model, "add._input0_quantizer", {"add._input1_quantizer"});
  // [end share]
  TORCH_CHECK(model->add->_input0_quantizer.get() == model->add->_input1_quantizer.get(),
              "share_quantizer did not share");

  // [calibrate]
  // Collect statistics over a few batches (eval mode, no gradients, every mode restored after),
  // then load amax: max for MaxCalibrators, the method below for histogram ones.
  size_t next = 0;
  const auto summary = tq::utils::calibrate(
      *model,
      [&] {
        if (next == batches.size()) return false;
        model->forward(batches[next++]);
        return true;
      },
      tq::utils::CalibrateOptions().method(tq::calib::ComputeAmaxOptions("max")));
  std::cout << summary.str() << '\n';
  // [end calibrate]
  TORCH_CHECK(summary.batches == 4 && summary.calibrated.size() == 7, "calibrate: ", summary.str());

  // [summary]
  tq::utils::print_quantizer_summary(*model, std::cout);  // name, bits, axis, amax, calibrator
  const std::string json = tq::utils::quantizer_summary_json(*model);
  // [end summary]
  TORCH_CHECK(json.find("\"conv1._input_quantizer\"") != std::string::npos, json);

  // [sensitivity]
  // How much the metric moves when one layer stays in float; keep the worst one in float.
  const at::Tensor x = batches[0];
  const at::Tensor reference = [&] {
    tq::utils::disable_quantization(*model);
    at::Tensor out = model->forward(x).detach();
    tq::utils::enable_quantization(*model);
    return out;
  }();
  const auto results = tq::utils::sensitivity_analysis(
      *model, [&] { return -torch::mse_loss(model->forward(x), reference).item<double>(); });
  std::cout << tq::utils::sensitivity_table(results);
  const auto kept_in_float = tq::utils::leave_unquantized(*model, results, /*n=*/1);
  // [end sensitivity]
  TORCH_CHECK(results.size() == 4 && kept_in_float.size() == 1, "sensitivity");
  // A checkpoint holds values, not modes: switch the layer back on before comparing below.
  tq::utils::enable_quantizers(*model);

  // [optim]
  // Per-group options for a torch::optim optimizer, frozen parameters, weights quantized in place.
  namespace tqo = tq::optim;
  tqo::freeze_parameters(*model, {"^conv1\\."});
  const auto defaults = torch::optim::SGDOptions(1e-3).momentum(0.9);
  torch::optim::SGD sgd(tqo::group_parameters(*model,
                                              {tqo::ParamGroupOptions({"^conv2\\."}).lr(1e-4),
                                               tqo::ParamGroupOptions({"^fc\\."})},
                                              defaults),
                        defaults);
  sgd.zero_grad();
  torch::nn::functional::cross_entropy(model->forward(x), torch::randint(4, {16})).backward();
  sgd.step();
  const auto changed = tqo::quant_weight_inplace(*model);  // "conv1", "conv2", "fc"
  // [end optim]
  TORCH_CHECK(sgd.param_groups().size() == 2 && changed.size() == 3, "optim helpers");
  TORCH_CHECK(!model->conv1->weight.requires_grad(), "conv1 not frozen");

  // [checkpoint]
  // A file Python reads with torch.load (and loads into the model with upstream's names), and
  // back; loading checks every name and shape first and changes nothing on a mismatch.
  tq::utils::save_state_dict(*model, dir + "/model.pt");
  Net restored;
  const auto report = tq::utils::load_state_dict(*restored, dir + "/model.pt");
  std::cout << report.str() << '\n';  // _amax buffers are created where needed
  // [end checkpoint]
  TORCH_CHECK(restored->forward(x).equal(model->forward(x)), "checkpoint round trip differs");

  // [trt]
  // TensorRT's calibration cache (scale = amax / 127 per activation tensor) and an amax table.
  const auto cache =
      tq::utils::write_calib_cache(*model, dir + "/model.cache",
                                   tq::utils::CalibCacheOptions().tensor_names(
                                       {{"conv1._input_quantizer", "input"},
                                        {"conv2._input_quantizer", "/relu/Relu_output_0"},
                                        {"add._input0_quantizer", "/conv2/Conv_output_0"},
                                        {"add._input1_quantizer", "/relu/Relu_output_0"},
                                        {"fc._input_quantizer", "/ReduceMean_output_0"}}));
  std::cout << cache.str() << '\n';
  const float input_amax =
      tq::utils::read_calib_cache(dir + "/model.cache").scales.at("input") * 127;
  tq::utils::write_amax_json(*model, dir + "/amax.json");
  // [end trt]
  const float want = model->conv1->_input_quantizer->amax().item<float>();
  TORCH_CHECK(std::abs(input_amax - want) <= 1e-6f * want, "cache amax ", input_amax, " vs ", want);
  // Five quantizers, four tensors: add._input1_quantizer reads conv2's input, with the same scale.
  TORCH_CHECK(cache.written.size() == 5 && cache.cache.scales.size() == 4 && cache.unmapped.empty(),
              cache.str());

  // std::remove, not std::filesystem::remove_all: the latter binds to a copy inside libtorch.so
  // (torch 2.11 wheel) that crashes.
  for (const char* f : {"/model.pt", "/model.cache", "/amax.json", ""})
    std::remove((dir + f).c_str());
  std::cout << "workflow tour: every step checked\n";
  return 0;
}
