// Checkpoints across languages: load_state_dict validates everything before it copies anything,
// creates missing _amax buffers in quantizers, and save_state_dict writes what torch.load reads
// (the Python side runs in the python_checkpoint_roundtrip ctest, which drives CheckpointPython).

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/utils/checkpoint.h"

namespace torchquant {
namespace {

using testing::expect_error;

// The C++ twin of the model in tests/python/checkpoint_roundtrip.py.
struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(4))),
        fc(register_module("fc", nn::QuantLinear(torch::nn::LinearOptions(4, 2)))),
        add(register_module("add", nn::QuantAdd())) {}
  nn::QuantConv2d conv1;
  torch::nn::BatchNorm2d bn1;
  nn::QuantLinear fc;
  nn::QuantAdd add;
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("torchquant_ckpt_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// Every parameter and buffer, cloned.
std::map<std::string, at::Tensor> snapshot(const torch::nn::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().detach().clone();
  return out;
}

void expect_same_state(const std::map<std::string, at::Tensor>& a,
                       const std::map<std::string, at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_EQ(t.scalar_type(), b.at(name).scalar_type()) << name;
    EXPECT_TRUE(t.equal(b.at(name))) << name;
  }
}

void write_dict(const std::string& path, const c10::impl::GenericDict& dict) {
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The state of a calibrated net with distinct values, as a generic dict to tamper with.
c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

c10::impl::GenericDict calibrated_state() {
  torch::manual_seed(3);
  NetImpl net;
  net.conv1->_input_quantizer->set_amax(2.5);
  net.conv1->_weight_quantizer->set_amax(torch::rand({4, 1, 1, 1}) + 0.5);
  net.fc->_input_quantizer->set_amax(1.5);
  net.add->_input0_quantizer->set_amax(3.0);
  {
    torch::NoGradGuard g;
    net.bn1->running_mean.copy_(torch::randn({4}));
    net.bn1->num_batches_tracked.fill_(11);
  }
  auto dict = new_dict();
  for (const auto& p : net.named_parameters()) dict.insert(p.key(), p.value().detach().clone());
  for (const auto& b : net.named_buffers()) dict.insert(b.key(), b.value().detach().clone());
  return dict;
}

TEST(Checkpoint, RoundTripCreatesAmaxInFreshQuantizers) {
  torch::manual_seed(1);
  NetImpl source;
  source.conv1->_input_quantizer->set_amax(2.5);
  source.conv1->_weight_quantizer->set_amax(torch::tensor({1.f, 2.f, 3.f, 4.f}).view({4, 1, 1, 1}));
  source.fc->_input_quantizer->set_amax(1.25);
  source.add->_input1_quantizer->set_pre_quant_scale(torch::full({1}, 0.5));
  {
    torch::NoGradGuard g;
    source.bn1->running_var.uniform_(0.5, 2.0);
    source.bn1->num_batches_tracked.fill_(42);
  }
  const std::string path = temp_path("roundtrip.pt");
  utils::save_state_dict(source, path);

  torch::manual_seed(2);
  NetImpl target;  // other weights, no amax anywhere
  ASSERT_FALSE(target.conv1->_input_quantizer->has_amax());
  const utils::LoadReport report = utils::load_state_dict(target, path);
  EXPECT_EQ(report.created,
            (std::vector<std::string>{"conv1._input_quantizer._amax",
                                      "conv1._weight_quantizer._amax", "fc._input_quantizer._amax",
                                      "add._input1_quantizer._pre_quant_scale"}));
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_EQ(report.loaded.size(), 2u + 5u + 2u);  // conv1 w/b, bn1 (4 + tracked), fc w/b
  expect_same_state(snapshot(source), snapshot(target));
  EXPECT_EQ(target.conv1->_weight_quantizer->amax().sizes(), (std::vector<int64_t>{4, 1, 1, 1}));
  EXPECT_EQ(target.bn1->num_batches_tracked.scalar_type(), at::kLong);
  EXPECT_NE(report.str().find("created: conv1._input_quantizer._amax"), std::string::npos);
  // The created buffers are the quantizers' own: forward uses them.
  EXPECT_TRUE(target.conv1->_input_quantizer->amax().equal(torch::scalar_tensor(2.5f)));
  at::Tensor x = torch::randn({1, 3, 5, 5});
  EXPECT_TRUE(target.conv1(x).equal(source.conv1(x)));
  std::remove(path.c_str());
}

TEST(Checkpoint, TruncatedOrForeignFileIsAClearErrorAndChangesNothing) {
  NetImpl source;
  const std::string path = temp_path("truncated.pt");
  utils::save_state_dict(source, path);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  NetImpl target;
  const auto before = snapshot(target);
  expect_error([&] { utils::load_state_dict(target, path); },
               {"torchquant::utils::load_state_dict", "cannot read '" + path + "'", "truncated"});
  expect_same_state(before, snapshot(target));

  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "conv1.weight: 1 2 3\n";
  }
  expect_error([&] { utils::load_state_dict(target, path); }, {"cannot read '" + path + "'"});
  expect_error([&] { utils::load_state_dict(target, path + ".nope"); },
               {"cannot open '" + path + ".nope' for reading"});
  { std::ofstream out(path, std::ios::binary | std::ios::trunc); }
  expect_error([&] { utils::load_state_dict(target, path); }, {"is empty"});
  expect_same_state(before, snapshot(target));
  std::remove(path.c_str());
}

TEST(Checkpoint, EveryMismatchIsListedAndTheModelIsUntouched) {
  auto dict = calibrated_state();
  dict.insert_or_assign("conv1.weight", torch::zeros({8, 3, 3, 3}));            // shape
  dict.insert_or_assign("fc.bias", torch::zeros({3}));                          // shape
  dict.insert_or_assign("bn1.num_batches_tracked", torch::scalar_tensor(1.0));  // dtype kind
  ASSERT_EQ(dict.erase("bn1.running_var"), 1u);                                 // missing
  dict.insert("head.weight", torch::zeros({2}));                                // unexpected
  dict.insert("fc.scale", c10::IValue(int64_t{3}));                             // not a tensor
  const std::string path = temp_path("mismatch.pt");
  write_dict(path, dict);

  NetImpl target;
  target.fc->_input_quantizer->set_amax(9.0);  // a quantizer that already has amax
  const auto before = snapshot(target);
  expect_error([&] { utils::load_state_dict(target, path); },
               {"does not match the model (6 problems); the model was not changed",
                "shape mismatch: 'conv1.weight' is [8, 3, 3, 3] in the file but [4, 3, 3, 3] in "
                "the model",
                "shape mismatch: 'fc.bias' is [3] in the file but [2] in the model",
                "dtype mismatch: 'bn1.num_batches_tracked' is Float in the file but Long",
                "missing in the file: 'bn1.running_var' (model shape [4])",
                "unexpected in the file: 'head.weight' (shape [2])",
                "'fc.scale' holds a value of kind Int, not a tensor", "strict(false)",
                "allow_missing(true)"});
  expect_same_state(before, snapshot(target));
  EXPECT_FALSE(target.conv1->_input_quantizer->has_amax());  // nothing created either
  std::remove(path.c_str());
}

TEST(Checkpoint, MissingKeyIsAnErrorUnlessAllowed) {
  auto dict = calibrated_state();
  ASSERT_EQ(dict.erase("fc.weight"), 1u);
  const std::string path = temp_path("missing.pt");
  write_dict(path, dict);
  NetImpl target;
  const auto before = snapshot(target);
  expect_error([&] { utils::load_state_dict(target, path); },
               {"(1 problem)", "missing in the file: 'fc.weight' (model shape [2, 4])",
                "allow_missing(true)"});
  expect_same_state(before, snapshot(target));

  const auto report =
      utils::load_state_dict(target, path, utils::LoadOptions().allow_missing(true));
  EXPECT_EQ(report.missing, std::vector<std::string>{"fc.weight"});
  EXPECT_TRUE(target.fc->weight.equal(before.at("fc.weight")));  // left as it was
  EXPECT_TRUE(target.fc->bias.equal(dict.at("fc.bias").toTensor()));
  std::remove(path.c_str());
}

TEST(Checkpoint, UnexpectedKeyStrictAndNonStrict) {
  auto dict = calibrated_state();
  dict.insert("classifier.weight", torch::ones({2, 2}));
  // `_amax` under a module that is not a quantizer is unexpected too.
  dict.insert("bn1._amax", torch::scalar_tensor(1.0f));
  const std::string path = temp_path("unexpected.pt");
  write_dict(path, dict);
  NetImpl target;
  const auto before = snapshot(target);
  expect_error([&] { utils::load_state_dict(target, path); },
               {"(2 problems)", "unexpected in the file: 'classifier.weight' (shape [2, 2])",
                "unexpected in the file: 'bn1._amax' (shape [])", "strict(false)"});
  expect_same_state(before, snapshot(target));

  const auto report = utils::load_state_dict(target, path, utils::LoadOptions().strict(false));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"classifier.weight", "bn1._amax"}));
  EXPECT_TRUE(target.conv1->weight.equal(dict.at("conv1.weight").toTensor()));
  EXPECT_TRUE(target.conv1->_input_quantizer->amax().equal(torch::scalar_tensor(2.5f)));
  std::remove(path.c_str());
}

TEST(Checkpoint, AmaxIsCreatedOnlyWhereTheQuantizerHasNone) {
  NetImpl target;
  target.conv1->_weight_quantizer->set_amax(torch::ones({4, 1, 1, 1}));
  auto dict = new_dict();
  for (const auto& [name, t] : snapshot(target)) dict.insert(name, t);
  dict.insert("conv1._input_quantizer._amax", torch::scalar_tensor(4.0, at::kDouble));
  dict.insert("add._input0_quantizer._amax", torch::full({1}, 0.75f));
  const std::string path = temp_path("amax.pt");
  write_dict(path, dict);

  const auto report = utils::load_state_dict(target, path);
  EXPECT_EQ(report.created, (std::vector<std::string>{"conv1._input_quantizer._amax",
                                                      "add._input0_quantizer._amax"}));
  // set_amax stores float32, whatever the file holds.
  EXPECT_EQ(target.conv1->_input_quantizer->amax().scalar_type(), at::kFloat);
  EXPECT_TRUE(target.conv1->_input_quantizer->amax().equal(torch::scalar_tensor(4.0f)));
  EXPECT_TRUE(target.add->_input0_quantizer->amax().equal(torch::full({1}, 0.75f)));
  EXPECT_TRUE(target.named_buffers().contains("add._input0_quantizer._amax"));

  // A quantizer that has an amax keeps its shape: a per-tensor amax does not replace it.
  dict.insert_or_assign("conv1._weight_quantizer._amax", torch::scalar_tensor(1.0f));
  write_dict(path, dict);
  NetImpl other;
  other.conv1->_weight_quantizer->set_amax(torch::ones({4, 1, 1, 1}));
  expect_error([&] { utils::load_state_dict(other, path); },
               {"shape mismatch: 'conv1._weight_quantizer._amax' is [] in the file but [4, 1, 1, "
                "1] in the model"});
  EXPECT_FALSE(other.conv1->_input_quantizer->has_amax());
  // An integer amax is a dtype problem.
  dict.insert_or_assign("conv1._weight_quantizer._amax", torch::ones({4, 1, 1, 1}));
  dict.insert_or_assign("fc._input_quantizer._amax", torch::scalar_tensor(3, at::kInt));
  write_dict(path, dict);
  expect_error([&] { utils::load_state_dict(other, path); },
               {"dtype mismatch: 'fc._input_quantizer._amax' must be a dense floating tensor"});
  std::remove(path.c_str());
}

TEST(Checkpoint, FloatingDtypesConvertAndKeepTheModelDtype) {
  auto dict = calibrated_state();
  dict.insert_or_assign("conv1.weight", dict.at("conv1.weight").toTensor().to(at::kDouble));
  dict.insert_or_assign("bn1.num_batches_tracked",
                        dict.at("bn1.num_batches_tracked").toTensor().to(at::kInt));
  const std::string path = temp_path("dtypes.pt");
  write_dict(path, dict);
  NetImpl target;
  utils::load_state_dict(target, path);
  EXPECT_EQ(target.conv1->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(target.conv1->weight.equal(dict.at("conv1.weight").toTensor().to(at::kFloat)));
  EXPECT_EQ(target.bn1->num_batches_tracked.scalar_type(), at::kLong);
  EXPECT_EQ(target.bn1->num_batches_tracked.item<int64_t>(), 11);
  std::remove(path.c_str());
}

TEST(Checkpoint, AFileThatIsNotADictIsAnError) {
  const std::string path = temp_path("list.pt");
  const std::vector<char> bytes =
      torch::pickle_save(c10::IValue(c10::List<at::Tensor>({torch::ones({1})})));
  {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  NetImpl target;
  expect_error([&] { utils::load_state_dict(target, path); },
               {"does not hold a dict of str -> Tensor but a "});
  std::remove(path.c_str());
}

TEST(Checkpoint, SaveWritesPythonsStateDictOrder) {
  NetImpl net;
  net.conv1->_input_quantizer->set_amax(1.0);
  const std::string path = temp_path("order.pt");
  utils::save_state_dict(net, path);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto dict = torch::pickle_load(bytes).toGenericDict();
  std::vector<std::string> keys;
  for (const auto& item : dict) keys.push_back(item.key().toStringRef());
  EXPECT_EQ(keys, (std::vector<std::string>{"conv1.weight", "conv1.bias",
                                            "conv1._input_quantizer._amax", "bn1.weight",
                                            "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                            "bn1.num_batches_tracked", "fc.weight", "fc.bias"}));
  expect_error([&] { utils::save_state_dict(net, "/nonexistent-dir/x.pt"); },
               {"torchquant::utils::save_state_dict: cannot open '/nonexistent-dir/x.pt'"});
  std::remove(path.c_str());
}

TEST(Checkpoint, CreatedAmaxFollowsTheLayerDevice_CUDA) {
  NetImpl net;
  net.to(torch::kCUDA);
  auto dict = new_dict();
  for (const auto& [name, t] : snapshot(net)) dict.insert(name, t.cpu());
  dict.insert("conv1._input_quantizer._amax", torch::scalar_tensor(2.0f));
  dict.insert("add._input0_quantizer._amax", torch::scalar_tensor(3.0f));  // QuantAdd: no tensors
  const std::string path = temp_path("cuda.pt");
  write_dict(path, dict);
  utils::load_state_dict(net, path);
  EXPECT_TRUE(net.conv1->_input_quantizer->amax().is_cuda());
  EXPECT_TRUE(net.add->_input0_quantizer->amax().is_cuda());
  EXPECT_TRUE(net.conv1->weight.is_cuda());
  at::Tensor y = net.conv1(torch::randn({1, 3, 4, 4}, torch::kCUDA));
  EXPECT_TRUE(y.is_cuda());
  std::remove(path.c_str());
}

// Driven by tests/python/checkpoint_roundtrip.py: loads the files Python wrote, checks the values
// the script put in them, doubles every floating tensor and saves for Python to check.
float expected_offset(const std::string& name) {
  int64_t sum = 0;
  for (unsigned char c : name) sum += c;
  return static_cast<float>(sum % 1000);
}

TEST(CheckpointPython, LoadPythonFileAndSaveForPython) {
  const char* dir_env = std::getenv("TORCHQUANT_CHECKPOINT_DIR");
  ASSERT_NE(dir_env, nullptr) << "TORCHQUANT_CHECKPOINT_DIR is unset: this test is run by the "
                                 "python_checkpoint_roundtrip ctest";
  const std::string dir = dir_env;
  {
    NetImpl net;
    const auto before = snapshot(net);
    expect_error([&] { utils::load_state_dict(net, dir + "/py_state_ordered.pt"); },
                 {"cannot read", "py_state_ordered.pt", "OrderedDict",
                  "torch.save(dict(model.state_dict()), f)"});
    expect_same_state(before, snapshot(net));
  }
  NetImpl net;
  const auto report = utils::load_state_dict(net, dir + "/py_state.pt");
  EXPECT_EQ(report.created.size(), 6u) << report.str();
  EXPECT_TRUE(report.unexpected.empty());
  for (const auto& [name, t] : snapshot(net)) {
    const float offset = expected_offset(name);
    if (at::isFloatingType(t.scalar_type())) {
      at::Tensor want = (torch::arange(t.numel(), at::kFloat) + offset).div(64).reshape(t.sizes());
      EXPECT_TRUE(t.equal(want)) << name;
    } else {
      EXPECT_EQ(t.item<int64_t>(), static_cast<int64_t>(offset)) << name;
    }
  }
  {
    torch::NoGradGuard g;
    for (auto& p : net.parameters()) p.mul_(2);
    for (auto& b : net.buffers()) {
      if (at::isFloatingType(b.scalar_type())) {
        b.mul_(2);
      } else {
        b.add_(1);
      }
    }
  }
  utils::save_state_dict(net, dir + "/cpp_state.pt");
}

}  // namespace
}  // namespace torchquant
