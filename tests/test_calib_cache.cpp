// TensorRT calibration cache (write, read, malformed input) and the amax JSON table.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "test_helpers.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/utils/calib_cache.h"

namespace torchquant {
namespace {

using testing::expect_error;
using utils::CalibCacheOptions;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("torchquant_cache_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_all(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

float from_bits(uint32_t bits) {
  float f = 0;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1",
                              nn::QuantConv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)))),
        conv2(register_module(
            "conv2", nn::QuantConv2d(torch::nn::Conv2dOptions(4, 4, 1),
                                     nn::QuantLayerOptions().quant_desc_input(
                                         QuantDescriptor().axis(1))))),  // per-channel input
        fc(register_module("fc", nn::QuantLinear(torch::nn::LinearOptions(4, 2)))),
        add(register_module("add", nn::QuantAdd())),
        cat(register_module("cat", nn::QuantConcat())) {}
  nn::QuantConv2d conv1;
  nn::QuantConv2d conv2;
  nn::QuantLinear fc;
  nn::QuantAdd add;
  nn::QuantConcat cat;
};

// conv1 and add inputs calibrated; fc input dynamic; conv2 per channel; weights calibrated.
void calibrate(NetImpl& net) {
  net.conv1->_input_quantizer->set_amax(127.0);  // scale 1.0 -> 3f800000
  net.conv1->_weight_quantizer->set_amax(torch::ones({4, 1, 1, 1}));
  net.conv2->_input_quantizer->set_amax(torch::ones({1, 4, 1, 1}));
  net.add->_input0_quantizer->set_amax(1.0);  // scale 1/127 -> 3c010204
  net.add->_input1_quantizer->set_amax(2.54);
  net.cat->_input_quantizer->set_amax(0.5);
}

TEST(CalibCache, HexIsTheBigEndianBitPatternOfTheFloat32Scale) {
  EXPECT_EQ(utils::calib_cache_hex(1.0f), "3f800000");
  EXPECT_EQ(utils::calib_cache_hex(0.125f), "3e000000");
  EXPECT_EQ(utils::calib_cache_hex(1.0f / 127.0f), "3c010204");
  EXPECT_EQ(utils::calib_cache_hex(from_bits(0x1u)), "00000001");  // padded to 8 digits
  EXPECT_EQ(utils::calib_cache_hex(2.0f), "40000000");
}

TEST(CalibCache, WritesMappedPerTensorActivationQuantizers) {
  NetImpl net;
  calibrate(net);
  const std::string path = temp_path("net.cache");
  const auto report = utils::write_calib_cache(
      net, path,
      CalibCacheOptions().tensor_names({{"conv1._input_quantizer", "input"},
                                        {"add._input0_quantizer", "/layer1/relu/Relu_output_0"},
                                        {"cat._input_quantizer", "/cat/Concat_input"},
                                        {"fc._input_quantizer", "/fc/Gemm_input"}}));
  EXPECT_EQ(read_all(path),
            "TRT-8601-EntropyCalibration2\n"
            "/cat/Concat_input: " +
                utils::calib_cache_hex(0.5f / 127.0f) +
                "\n"
                "/layer1/relu/Relu_output_0: 3c010204\n"
                "input: 3f800000\n");
  EXPECT_EQ(report.written, (std::vector<std::pair<std::string, std::string>>{
                                {"conv1._input_quantizer", "input"},
                                {"add._input0_quantizer", "/layer1/relu/Relu_output_0"},
                                {"cat._input_quantizer", "/cat/Concat_input"}}));
  EXPECT_EQ(report.unmapped, std::vector<std::string>{"add._input1_quantizer"});
  ASSERT_EQ(report.unsupported.size(), 2u);
  EXPECT_NE(report.unsupported[0].find("conv2._input_quantizer: per-channel amax of shape "
                                       "[1, 4, 1, 1]"),
            std::string::npos);
  EXPECT_NE(report.unsupported[1].find("fc._input_quantizer: dynamic amax"), std::string::npos);
  // Weight quantizers are not activation quantizers: never listed.
  EXPECT_EQ(report.str().find("_weight_quantizer"), std::string::npos);
  EXPECT_NE(report.str().find("3 written, 1 unmapped, 2 unsupported"), std::string::npos);
  EXPECT_EQ(report.cache.scales.size(), 3u);

  const utils::CalibCache back = utils::read_calib_cache(path);
  EXPECT_EQ(back.version, 8601);
  EXPECT_EQ(back.algorithm, "EntropyCalibration2");
  EXPECT_EQ(back.scales, report.cache.scales);
  EXPECT_EQ(back.scales.at("input"), 1.0f);
  EXPECT_EQ(back.scales.at("/layer1/relu/Relu_output_0") * 127.0f, 1.0f);
  std::remove(path.c_str());
}

TEST(CalibCache, CallbackVersionAndStrict) {
  NetImpl net;
  calibrate(net);
  auto slashes = [](const std::string& q) -> c10::optional<std::string> {
    if (q.rfind("add.", 0) != 0) return c10::nullopt;
    std::string t = "/" + q;
    for (char& c : t) c = c == '.' ? '/' : c;
    return t;
  };
  const std::string path = temp_path("fn.cache");
  const auto report = utils::write_calib_cache(
      net, path,
      CalibCacheOptions()
          .trt_version(100900)
          .tensor_names({{"add._input1_quantizer", "shortcut"}})  // the map wins over the callback
          .tensor_name_fn(slashes));
  EXPECT_EQ(read_all(path), "TRT-100900-EntropyCalibration2\n/add/_input0_quantizer: 3c010204\n" +
                                std::string("shortcut: ") +
                                utils::calib_cache_hex(static_cast<float>(2.54) / 127.0f) + "\n");
  EXPECT_EQ(report.unmapped,
            (std::vector<std::string>{"conv1._input_quantizer", "cat._input_quantizer"}));

  expect_error(
      [&] {
        utils::collect_calib_cache(net, CalibCacheOptions().tensor_name_fn(slashes).strict(true));
      },
      {"torchquant::utils::collect_calib_cache: strict: 4 activation quantizer(s) cannot be "
       "written",
       "unmapped: conv1._input_quantizer", "unsupported: fc._input_quantizer: dynamic amax"});
  expect_error([&] { utils::collect_calib_cache(net, CalibCacheOptions().trt_version(0)); },
               {"trt_version must be positive", "got 0"});
  std::remove(path.c_str());
}

TEST(CalibCache, MapKeysMustBeActivationQuantizers) {
  NetImpl net;
  calibrate(net);
  expect_error(
      [&] {
        utils::collect_calib_cache(
            net, CalibCacheOptions().tensor_names({{"conv1._input_quantizr", "x"},
                                                   {"conv1._weight_quantizer", "w"},
                                                   {"add._input0_quantizer", "a"}}));
      },
      {"tensor_names lists 2 name(s) that are not activation quantizers of the model: "
       "'conv1._input_quantizr' 'conv1._weight_quantizer'",
       "(the model has 6 activation quantizers: 'conv1._input_quantizer'"});
  expect_error(
      [&] {
        utils::collect_calib_cache(
            net, CalibCacheOptions().tensor_names({{"add._input0_quantizer", ""}}));
      },
      {"the tensor name for 'add._input0_quantizer' must be non-empty"});
}

TEST(CalibCache, SharedTensorNeedsOneScale) {
  NetImpl net;
  calibrate(net);
  // Same tensor, different amax: an error naming both.
  expect_error(
      [&] {
        utils::collect_calib_cache(
            net, CalibCacheOptions().tensor_names(
                     {{"add._input0_quantizer", "t"}, {"add._input1_quantizer", "t"}}));
      },
      {"'t' gets scale", "from 'add._input0_quantizer' but", "from 'add._input1_quantizer'"});
  // Same amax: written once.
  net.add->_input1_quantizer->set_amax(1.0);
  const auto report = utils::collect_calib_cache(
      net, CalibCacheOptions().tensor_names(
               {{"add._input0_quantizer", "t"}, {"add._input1_quantizer", "t"}}));
  EXPECT_EQ(report.cache.scales.size(), 1u);
  EXPECT_EQ(report.written.size(), 2u);
}

struct ProbesImpl : torch::nn::Module {
  ProbesImpl() {
    auto add = [&](const std::string& name, const QuantDescriptor& d) {
      return register_module(name, nn::TensorQuantizer(d));
    };
    add("disabled", QuantDescriptor())->disable();
    add("four_bit", QuantDescriptor().num_bits(4));
    add("unsigned", QuantDescriptor().is_unsigned(true));
    add("e4m3", QuantDescriptor().num_bits(NumBits::e4m3()));
    add("pre_scaled", QuantDescriptor())->set_pre_quant_scale(torch::ones({1}));
    add("nan", QuantDescriptor());
    add("scaled", QuantDescriptor().scale_amax(2.0));
    for (const auto& c : named_children()) {
      std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(c.value())->set_amax(
          c.key() == "nan" ? std::nan("") : 1.0);
    }
  }
};

TEST(CalibCache, UnsupportedQuantizersSayWhy) {
  ProbesImpl probes;
  auto all = [](const std::string& q) -> c10::optional<std::string> { return q; };
  const auto report = utils::collect_calib_cache(probes, CalibCacheOptions().tensor_name_fn(all));
  const std::vector<std::string> want = {
      "disabled: disabled (kept in float)",
      "four_bit: num_bits 4 (the cache is for signed 8-bit integers)",
      "unsigned: num_bits 8 unsigned (the cache is for signed 8-bit integers)",
      "e4m3: num_bits (4, 3) (the cache is for signed 8-bit integers)",
      "pre_scaled: pre_quant_scale is set (TensorRT would quantize the unscaled tensor)",
      "nan: amax nan is not a finite positive number"};
  EXPECT_EQ(report.unsupported, want);
  // scale_amax multiplies amax, as the quantizer does.
  ASSERT_EQ(report.written.size(), 1u);
  EXPECT_EQ(report.cache.scales.at("scaled"), 2.0f / 127.0f);
}

TEST(CalibCache, ReadAcceptsTensorRTsVariants) {
  const std::string path = temp_path("variants.cache");
  write_all(path,
            "TRT-8000-EntropyCalibration\r\n"
            "images: 3c010a14\r\n"
            "\r\n"
            "input:0: 3f800000\r\n"                                    // a name with a colon
            "(Unnamed Layer* 4) [Fully Connected]_output: 3d65992f\n"  // spaces
            "short: 0\n");  // unpadded (TAO writes hex())
  const auto cache = utils::read_calib_cache(path);
  EXPECT_EQ(cache.version, 8000);
  EXPECT_EQ(cache.algorithm, "EntropyCalibration");
  ASSERT_EQ(cache.scales.size(), 4u);
  EXPECT_EQ(cache.scales.at("images"), from_bits(0x3c010a14u));
  EXPECT_EQ(cache.scales.at("input:0"), 1.0f);
  EXPECT_EQ(cache.scales.at("(Unnamed Layer* 4) [Fully Connected]_output"), from_bits(0x3d65992fu));
  EXPECT_EQ(cache.scales.at("short"), 0.0f);

  // write(read(x)) is canonical: sorted, padded, LF.
  utils::CalibCache c;
  c.version = 8601;
  c.scales = {{"b", 2.0f}, {"a", 0.5f}};
  utils::write_calib_cache(path, c);
  EXPECT_EQ(read_all(path), "TRT-8601-EntropyCalibration2\na: 3f000000\nb: 40000000\n");
  c.algorithm = "Entropy Calibration";
  expect_error([&] { utils::write_calib_cache(path, c); }, {"algorithm must be one word"});
  std::remove(path.c_str());
}

TEST(CalibCache, MalformedFilesAreErrorsNamingTheLine) {
  const std::string path = temp_path("bad.cache");
  struct Case {
    std::string text;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"", {"is empty (expected a TRT-<version>-<algorithm> header)"}},
      {"input: 3f800000\n", {"line 1: expected the header TRT-<version>-<algorithm>"}},
      {"TRT-86a1-EntropyCalibration2\n", {"line 1: expected the header", "TRT-86a1"}},
      {"TRT--EntropyCalibration2\n", {"line 1: expected the header"}},
      {"TRT-8601-\n", {"line 1: expected the header"}},
      {"TRT-8601-EntropyCalibration2\ninput 3f800000\n",
       {"line 2: expected '<tensor name>: <hex scale>', got 'input 3f800000'"}},
      {"TRT-8601-EntropyCalibration2\n: 3f800000\n", {"line 2: empty tensor name"}},
      {"TRT-8601-EntropyCalibration2\na: 3f800000\nb: 3g800000\n",
       {"line 3: the scale of 'b' must be 1 to 8 hex digits (float32 bits), got '3g800000'"}},
      {"TRT-8601-EntropyCalibration2\nb: 13f800000\n", {"line 2", "got '13f800000'"}},
      {"TRT-8601-EntropyCalibration2\nb: \n", {"line 2", "got ''"}},
      {"TRT-8601-EntropyCalibration2\na: 3f800000\n\na: 3f800000\n",
       {"line 4: tensor 'a' appears twice"}},
  };
  for (const Case& c : cases) {
    write_all(path, c.text);
    std::vector<std::string> parts = c.parts;
    parts.push_back("torchquant::utils::read_calib_cache: '" + path + "'");
    SCOPED_TRACE(c.text);
    try {
      utils::read_calib_cache(path);
      ADD_FAILURE() << "no error";
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n" << p;
    }
  }
  expect_error([&] { utils::read_calib_cache(path + ".missing"); }, {"cannot open"});
  std::remove(path.c_str());
}

TEST(AmaxJson, RoundTripsEveryQuantizer) {
  NetImpl net;
  calibrate(net);
  net.add->_input1_quantizer->set_amax(std::nan(""));
  net.fc->_weight_quantizer->disable();
  const std::string path = temp_path("amax.json");
  utils::write_amax_json(net, path);
  const std::string text = read_all(path);
  EXPECT_NE(text.find("\"format\": \"torchquant-amax\""), std::string::npos);
  EXPECT_NE(text.find("\"nan\""), std::string::npos);

  const auto records = utils::read_amax_json(path);
  std::vector<std::string> names;
  for (const auto& r : records) names.push_back(r.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "conv1._input_quantizer", "conv1._weight_quantizer", "conv2._input_quantizer",
                "conv2._weight_quantizer", "fc._input_quantizer", "fc._weight_quantizer",
                "add._input0_quantizer", "add._input1_quantizer", "cat._input_quantizer"}));
  EXPECT_TRUE(records[0].amax.equal(torch::scalar_tensor(127.0f)));
  EXPECT_TRUE(records[2].amax.equal(torch::ones({1, 4, 1, 1})));
  EXPECT_EQ(records[1].axis, std::vector<int64_t>{0});
  EXPECT_TRUE(records[0].axis.empty());
  EXPECT_FALSE(records[4].amax.defined());  // dynamic
  EXPECT_FALSE(records[5].enabled);
  EXPECT_EQ(records[0].num_bits, "8");
  EXPECT_TRUE(std::isnan(records[7].amax.item<float>()));
  EXPECT_TRUE(records[6].amax.equal(torch::scalar_tensor(1.0f)));

  // Into a fresh model: amax created where missing; dynamic entries leave the quantizer alone.
  NetImpl fresh;
  const auto set = utils::load_amax_json(fresh, path);
  EXPECT_EQ(set.size(), 6u);
  EXPECT_TRUE(fresh.conv1->_weight_quantizer->amax().equal(torch::ones({4, 1, 1, 1})));
  EXPECT_TRUE(fresh.cat->_input_quantizer->amax().equal(torch::scalar_tensor(0.5f)));
  EXPECT_FALSE(fresh.fc->_input_quantizer->has_amax());
  std::remove(path.c_str());
}

TEST(AmaxJson, LoadValidatesFirst) {
  NetImpl net;
  calibrate(net);
  const std::string path = temp_path("amax_bad.json");
  utils::write_amax_json(net, path);
  NetImpl other;
  other.conv1->_weight_quantizer->set_amax(1.0);  // per tensor: shape [] vs [4, 1, 1, 1]
  expect_error([&] { utils::load_amax_json(other, path); },
               {"torchquant::utils::load_amax_json", "nothing was changed",
                "'conv1._weight_quantizer' has amax shape [4, 1, 1, 1] in the file but [] in the "
                "model"});
  EXPECT_FALSE(other.conv1->_input_quantizer->has_amax());
  ProbesImpl probes;
  expect_error([&] { utils::load_amax_json(probes, path); },
               {"'conv1._input_quantizer' is not a TensorQuantizer of the model"});
  std::remove(path.c_str());
}

TEST(AmaxJson, MalformedTablesAreErrors) {
  const std::string path = temp_path("amax_malformed.json");
  const std::string head = R"({"format": "torchquant-amax", "version": 1, "quantizers": [)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "is not valid JSON"},
      {R"({"format": "other"})", "is not an amax table"},
      {R"({"format": "torchquant-amax", "version": 2, "quantizers": []})", "has version 2"},
      {R"({"format": "torchquant-amax", "version": 1})", "has no \"quantizers\" list"},
      {head + R"({"amax": null}]})", "quantizers[0]: expected an object with a string \"name\""},
      {head + R"({"name": "a", "shape": [2], "amax": [1.0]}]})",
       "quantizers[0] ('a'): \"amax\" has 1 values but shape [2] needs 2"},
      {head + R"({"name": "a", "shape": null, "amax": [1.0]}]})",
       "must both be null (dynamic) or both be lists"},
      {head + R"({"name": "a", "shape": [], "amax": ["big"]}]})",
       "an amax value must be a number, \"nan\", \"inf\" or \"-inf\", got \"big\""},
      {head + R"({"name": "a", "shape": [-1], "amax": []}]})", "non-negative integers"},
      {head + R"({"name": "a", "shape": null, "amax": null, "num_bits": "8"}]})",
       "\"num_bits\" must be an integer or [4, 3]"},
      {head + R"({"name": "a", "shape": null, "amax": null, "enabled": 1}]})",
       "\"enabled\" must be true or false"},
  };
  for (const auto& [text, part] : cases) {
    write_all(path, text);
    SCOPED_TRACE(text);
    expect_error([&] { utils::read_amax_json(path); },
                 {"torchquant::utils::read_amax_json: '" + path + "'", part});
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace torchquant
