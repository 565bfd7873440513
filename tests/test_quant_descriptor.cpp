// QuantDescriptor: defaults, validation, printing (reference group g), equality, JSON/YAML.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "reference.h"
#include "test_helpers.h"
#include "torchquant/quant_descriptor.h"

namespace torchquant {
namespace {

using testing::expect_error;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(QuantDescriptor, DefaultsAreUpstreams) {
  const QuantDescriptor d;
  EXPECT_EQ(d.num_bits(), NumBits(8));
  EXPECT_FALSE(d.name().has_value());
  EXPECT_TRUE(d.fake_quant());
  EXPECT_FALSE(d.axis().has_value());
  EXPECT_FALSE(d.has_amax());
  EXPECT_FALSE(d.amax().defined());
  EXPECT_FALSE(d.learn_amax());
  EXPECT_FALSE(d.scale_amax().has_value());
  EXPECT_EQ(d.calib_method(), "max");
  EXPECT_EQ(d.num_bins(), 2048);
  EXPECT_FALSE(d.skip_zeros());
  EXPECT_FALSE(d.is_unsigned());
  EXPECT_FALSE(d.narrow_range());
  EXPECT_EQ(d.str(), "QuantDescriptor(8bit fake axis= per-tensor)");
}

TEST(QuantDescriptor, PrintsLikeUpstreamForEveryReferenceCase) {
  int checked = 0;
  for (const auto& c : testing::reference_cases("g_tensor_quantizer")) {
    if (!c.meta.contains("descriptor_str")) continue;
    const auto desc = QuantDescriptor::from_json(c.meta["params"]["quant_desc"].dump());
    EXPECT_EQ(desc.str(), c.meta["descriptor_str"].get<std::string>()) << c.name;
    ++checked;
  }
  EXPECT_GE(checked, 24);
}

TEST(QuantDescriptor, PrintsNameE4m3AndScaleAmax) {
  auto d = QuantDescriptor().name("conv1.weight").num_bits(NumBits::e4m3()).scale_amax(0.5);
  EXPECT_EQ(d.str(), "conv1.weight: ((4, 3)bit fake axis= per-tensor scale_amax=0.5)");
  std::ostringstream os;
  os << QuantDescriptor().axis(std::vector<int64_t>{1, 2}).fake_quant(false).is_unsigned(true);
  EXPECT_EQ(os.str(), "QuantDescriptor(unsigned 8bit real axis=(1, 2))");
}

TEST(QuantDescriptor, AmaxIsStoredInFloat32WithItsShape) {
  auto d = QuantDescriptor().amax(1.1);
  EXPECT_EQ(d.amax().dim(), 0);
  EXPECT_EQ(d.amax().scalar_type(), torch::kFloat);
  EXPECT_EQ(d.amax().item<float>(), 1.1f);
  d.amax(std::vector<double>{0.5, 2.0});
  EXPECT_EQ(d.amax().sizes(), torch::IntArrayRef({2}));
  d.amax(torch::tensor({1.0, 2.0, 3.0}, torch::kDouble).reshape({1, 3, 1}));
  EXPECT_EQ(d.amax().sizes(), torch::IntArrayRef({1, 3, 1}));
  EXPECT_EQ(d.amax_values(), (std::vector<float>{1.f, 2.f, 3.f}));
  d.clear_amax();
  EXPECT_FALSE(d.has_amax());
}

TEST(QuantDescriptor, InvalidValuesAreErrorsWhereWritten) {
  expect_error([] { QuantDescriptor().num_bits(NumBits(5, 2)); },
               {"QuantDescriptor", "(4, 3)", "(5, 2)"});
  expect_error([] { QuantDescriptor().num_bits(17); }, {"num_bits", "[0, 16]", "17"});
  expect_error([] { QuantDescriptor().num_bits(-1); }, {"num_bits", "-1"});
  expect_error([] { QuantDescriptor().axis(0).learn_amax(true); },
               {"QuantDescriptor::learn_amax", "axis None", "(0,)"});
  expect_error([] { QuantDescriptor().learn_amax(true).axis(1); },
               {"QuantDescriptor::axis", "learn_amax", "(1,)"});
  expect_error([] { QuantDescriptor().calib_method("entropy"); },
               {"calib_method", "\"max\" or \"histogram\"", "entropy"});
  expect_error([] { QuantDescriptor().num_bins(0); }, {"num_bins", "positive", "0"});
  expect_error(
      [] {
        QuantDescriptor().axis(std::vector<int64_t>{1, 1});
      },
      {"QuantDescriptor::axis", "repeated"});
  expect_error([] { NumBits::e4m3().bits(); }, {"E4M3"});
  // A failed setter leaves the descriptor as it was.
  auto d = QuantDescriptor().axis(0);
  EXPECT_ANY_THROW(d.learn_amax(true));
  EXPECT_FALSE(d.learn_amax());
  EXPECT_EQ(*d.axis(), std::vector<int64_t>{0});
}

TEST(QuantDescriptor, Equality) {
  EXPECT_EQ(QuantDescriptor(), QUANT_DESC_8BIT_PER_TENSOR());
  EXPECT_NE(QuantDescriptor(), QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR());
  EXPECT_EQ(QuantDescriptor().axis(0), QuantDescriptor().axis(std::vector<int64_t>{0}));
  EXPECT_NE(QuantDescriptor().amax(1.0), QuantDescriptor().amax(std::vector<double>{1.0}));
  EXPECT_NE(QuantDescriptor().narrow_range(true), QuantDescriptor());
  EXPECT_NE(QuantDescriptor().calib_method("histogram"), QuantDescriptor());
  EXPECT_NE(QuantDescriptor().num_bins(1024), QuantDescriptor());
}

TEST(QuantDescriptor, PredefinedDescriptors) {
  EXPECT_TRUE(QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR().is_unsigned());
  for (const auto& d :
       {QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL(), QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL(),
        QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL(), QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW(),
        QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL(),
        QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL(),
        QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL()}) {
    EXPECT_EQ(d.str(), "QuantDescriptor(8bit fake axis=0)");
  }
  // pytorch_quantization 2.2.1's ConvTranspose choice stays selectable.
  for (const auto& d : {QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL_AXIS1(),
                        QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL_AXIS1(),
                        QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL_AXIS1()}) {
    EXPECT_EQ(d.str(), "QuantDescriptor(8bit fake axis=1)");
  }
}

std::vector<QuantDescriptor> varied_descriptors() {
  return {
      QuantDescriptor(),
      QuantDescriptor().name("layer1.0.conv1._input_quantizer").calib_method("histogram"),
      QuantDescriptor().num_bits(4).is_unsigned(true).narrow_range(true).amax(1.1),
      QuantDescriptor().axis(0).amax(torch::tensor({0.5f, 0.75f, 1.5f}).reshape({3, 1, 1, 1})),
      QuantDescriptor().axis(std::vector<int64_t>{1, -1}).fake_quant(false).scale_amax(0.9),
      QuantDescriptor().learn_amax(true).amax(0.8).num_bins(512).skip_zeros(true),
      QuantDescriptor().num_bits(NumBits::e4m3()).name("it's: odd # name"),
      QuantDescriptor().amax(1e-5).name("true"),
      QuantDescriptor().amax(std::vector<double>{}),
  };
}

TEST(QuantDescriptor, JsonRoundTripIsLossless) {
  for (const auto& d : varied_descriptors()) {
    const std::string json = d.to_json();
    EXPECT_EQ(QuantDescriptor::from_json(json), d) << json;
  }
}

TEST(QuantDescriptor, YamlRoundTripIsLossless) {
  for (const auto& d : varied_descriptors()) {
    const std::string yaml = d.to_yaml();
    EXPECT_EQ(QuantDescriptor::from_yaml(yaml), d) << yaml;
  }
}

TEST(QuantDescriptor, JsonKeepsWhatUpstreamDictDrops) {
  const auto d = QuantDescriptor().narrow_range(true).calib_method("histogram");
  const std::string json = d.to_json();
  EXPECT_NE(json.find("\"narrow_range\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"calib_method\": \"histogram\""), std::string::npos) << json;
}

TEST(QuantDescriptor, ReadsAndWritesUpstreamYaml) {
  // Files written by PyYAML exactly as pytorch_quantization's to_yaml() does (see
  // tests/data/upstream_yaml/README.md); reading them and writing back gives the same bytes.
  const std::string dir =
      testing::data_dir("TORCHQUANT_TEST_DATA_DIR", TORCHQUANT_TEST_DATA_DIR) + "/upstream_yaml/";
  struct Expect {
    const char* file;
    QuantDescriptor desc;
  };
  const std::vector<Expect> expects = {
      {"default", QuantDescriptor()},
      {"per_channel_weight", QuantDescriptor().name("conv1.weight").axis(std::vector<int64_t>{0})},
      {"fixed_amax_unsigned", QuantDescriptor().num_bits(4).amax(1.1).is_unsigned(true)},
      {"real_quant_scale_amax", QuantDescriptor().fake_quant(false).scale_amax(0.9)},
      {"learn_amax", QuantDescriptor().amax(0.8).learn_amax(true)},
      {"per_channel_amax", QuantDescriptor()
                               .axis(std::vector<int64_t>{1})
                               .amax(torch::tensor({0.5f, 0.75f, 1.0f}).reshape({1, 3, 1, 1}))},
      {"multi_axis", QuantDescriptor().name("x: y").axis(std::vector<int64_t>{1, 2})},
  };
  for (const auto& e : expects) {
    const std::string text = read_file(dir + e.file + ".yaml");
    const QuantDescriptor d = QuantDescriptor::from_yaml(text);
    EXPECT_EQ(d, e.desc) << e.file;
    EXPECT_EQ(d.to_yaml(), text) << e.file;
  }
}

// The data folders can move with a copy of the build (scripts/device-check.sh sets them).
TEST(TestData, FolderFromTheEnvironmentBeforeTheBuiltInOne) {
  const char* name = "TORCHQUANT_TEST_ONLY_DIR";
  ::unsetenv(name);
  EXPECT_EQ(testing::data_dir(name, "/built/in"), "/built/in");
  ::setenv(name, "", 1);
  EXPECT_EQ(testing::data_dir(name, "/built/in"), "/built/in");
  ::setenv(name, "/elsewhere", 1);
  EXPECT_EQ(testing::data_dir(name, "/built/in"), "/elsewhere");
  ::unsetenv(name);
}

TEST(QuantDescriptor, ReadsPythonTupleTags) {
  const auto d = QuantDescriptor::from_yaml(
      "axis: !!python/tuple\n- 0\nname: null\nnum_bits: !!python/tuple\n- 4\n- 3\n");
  EXPECT_TRUE(d.num_bits().is_e4m3());
  EXPECT_EQ(*d.axis(), std::vector<int64_t>{0});
}

TEST(QuantDescriptor, MalformedInputIsAClearError) {
  expect_error([] { QuantDescriptor::from_json("{\"num_bits\": 8,"); },
               {"QuantDescriptor::from_json", "malformed JSON"});
  expect_error([] { QuantDescriptor::from_json("[1, 2]"); }, {"from_json", "mapping"});
  expect_error([] { QuantDescriptor::from_json("{\"bits\": 8}"); }, {"unknown key 'bits'"});
  expect_error([] { QuantDescriptor::from_json("{\"num_bits\": \"8\"}"); },
               {"'num_bits'", "integer"});
  expect_error([] { QuantDescriptor::from_json("{\"num_bits\": [5, 2]}"); }, {"(5, 2)"});
  expect_error([] { QuantDescriptor::from_json("{\"fake_quant\": 1}"); },
               {"'fake_quant'", "boolean"});
  expect_error([] { QuantDescriptor::from_json("{\"amax\": [[1.0], [1.0, 2.0]]}"); }, {"ragged"});
  expect_error([] { QuantDescriptor::from_json("{\"amax\": \"big\"}"); }, {"amax", "number"});
  expect_error([] { QuantDescriptor::from_json("{\"axis\": [0, \"1\"]}"); }, {"'axis'"});
  expect_error([] { QuantDescriptor::from_json("{\"axis\": 0, \"learn_amax\": true}"); },
               {"learn_amax"});
  expect_error([] { QuantDescriptor::from_yaml("num_bits: [8\nname: x"); },
               {"QuantDescriptor::from_yaml", "malformed YAML"});
  expect_error([] { QuantDescriptor::from_yaml("- 1\n- 2\n"); }, {"from_yaml", "mapping"});
  expect_error([] { QuantDescriptor::from_yaml("calib_method: kl\n"); }, {"calib_method", "kl"});
}

}  // namespace
}  // namespace torchquant
