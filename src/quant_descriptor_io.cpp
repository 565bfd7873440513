// QuantDescriptor <-> JSON / YAML. Both go through one nlohmann::json object with
// pytorch_quantization's dict() keys; YAML is read with yaml-cpp and written in PyYAML's layout.

#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "torchquant/quant_descriptor.h"
#include "util/py_format.h"

namespace torchquant {
namespace {

using nlohmann::json;

// JSON strings are UTF-8: nlohmann's dump() throws on anything else.
bool is_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

// Nested lists of numbers -> flat values + shape; a number -> 0-d.
void flatten_amax(const json& node, size_t depth, std::vector<int64_t>* shape,
                  std::vector<double>* values, const char* where) {
  if (node.is_number()) {
    TORCH_CHECK_VALUE(depth == shape->size(), where, ": amax is a ragged nested list");
    values->push_back(node.get<double>());
    return;
  }
  TORCH_CHECK_TYPE(node.is_array(), where,
                   ": amax must be a number or a (nested) list of numbers, ", "got ",
                   node.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  const auto n = static_cast<int64_t>(node.size());
  if (depth == shape->size()) {
    TORCH_CHECK_VALUE(values->empty() || depth > 0, where, ": amax is a ragged nested list");
    shape->push_back(n);
  } else {
    TORCH_CHECK_VALUE((*shape)[depth] == n, where, ": amax is a ragged nested list");
  }
  for (const auto& child : node) flatten_amax(child, depth + 1, shape, values, where);
}

json nest_amax(const std::vector<float>& values, const std::vector<int64_t>& shape, size_t dim,
               size_t* offset) {
  if (dim == shape.size()) return static_cast<double>(values[(*offset)++]);
  json list = json::array();
  for (int64_t i = 0; i < shape[dim]; ++i)
    list.push_back(nest_amax(values, shape, dim + 1, offset));
  return list;
}

template <typename T>
T get_as(const json& value, const std::string& key, const char* what, const char* where) {
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>) {
    ok = value.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    ok = value.is_number_integer();
  } else if constexpr (std::is_floating_point_v<T>) {
    ok = value.is_number();
  } else {
    ok = value.is_string();
  }
  TORCH_CHECK_TYPE(ok, where, ": '", key, "' must be ", what, ", got ",
                   value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return value.get<T>();
}

NumBits num_bits_from(const json& value, const char* where) {
  if (value.is_array()) {
    TORCH_CHECK_VALUE(
        value.size() == 2 && value[0].is_number_integer() && value[1].is_number_integer(), where,
        ": 'num_bits' must be an integer or [4, 3], got ",
        value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return NumBits(value[0].get<int64_t>(), value[1].get<int64_t>());
  }
  return NumBits(get_as<int64_t>(value, "num_bits", "an integer or [4, 3]", where));
}

void axis_from(const json& value, QuantDescriptor* desc, const char* where) {
  if (value.is_null()) return;
  if (value.is_number_integer()) {
    desc->axis(value.get<int64_t>());
    return;
  }
  TORCH_CHECK_TYPE(value.is_array(), where, ": 'axis' must be an integer or a list of integers, ",
                   "got ", value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  std::vector<int64_t> axes;
  for (const auto& a : value)
    axes.push_back(get_as<int64_t>(a, "axis", "a list of integers", where));
  desc->axis(axes);
}

QuantDescriptor from_object(const json& obj, const char* where) {
  TORCH_CHECK_VALUE(obj.is_object(), where, ": expected a mapping of descriptor fields, got ",
                    obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  QuantDescriptor desc;
  for (const auto& [key, value] : obj.items()) {
    if (key == "num_bits") {
      desc.num_bits(num_bits_from(value, where));
    } else if (key == "name") {
      if (!value.is_null()) {
        const auto name = get_as<std::string>(value, key, "a string or null", where);
        TORCH_CHECK_VALUE(is_utf8(name), where, ": 'name' must be valid UTF-8, got ",
                          value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        desc.name(name);
      } else {
        desc.name(c10::nullopt);
      }
    } else if (key == "fake_quant") {
      desc.fake_quant(get_as<bool>(value, key, "a boolean", where));
    } else if (key == "axis") {
      axis_from(value, &desc, where);
    } else if (key == "amax") {
      if (value.is_null()) continue;
      std::vector<int64_t> shape;
      std::vector<double> values;
      flatten_amax(value, 0, &shape, &values, where);
      std::vector<float> as_float(values.begin(), values.end());
      desc.amax(at::tensor(as_float).reshape(shape));
    } else if (key == "learn_amax") {
      desc.learn_amax(get_as<bool>(value, key, "a boolean", where));
    } else if (key == "scale_amax") {
      desc.scale_amax(value.is_null() ? c10::nullopt
                                      : c10::optional<double>(
                                            get_as<double>(value, key, "a number or null", where)));
    } else if (key == "calib_method") {
      desc.calib_method(get_as<std::string>(value, key, "a string", where));
    } else if (key == "num_bins") {
      desc.num_bins(get_as<int64_t>(value, key, "an integer", where));
    } else if (key == "skip_zeros") {
      desc.skip_zeros(get_as<bool>(value, key, "a boolean", where));
    } else if (key == "unsigned") {
      desc.is_unsigned(get_as<bool>(value, key, "a boolean", where));
    } else if (key == "narrow_range") {
      desc.narrow_range(get_as<bool>(value, key, "a boolean", where));
    } else {
      TORCH_CHECK_VALUE(false, where, ": unknown key '", key,
                        "' (expected num_bits, name, fake_quant, axis, amax, learn_amax, "
                        "scale_amax, calib_method, num_bins, skip_zeros, unsigned, narrow_range)");
    }
  }
  return desc;
}

json to_object(const QuantDescriptor& d) {
  const QuantDescriptor defaults;
  json obj = json::object();
  obj["num_bits"] = d.num_bits().is_e4m3() ? json::array({4, 3}) : json(d.num_bits().bits());
  obj["name"] = d.name() ? json(*d.name()) : json(nullptr);
  if (!d.fake_quant()) obj["fake_quant"] = false;
  if (d.axis()) obj["axis"] = d.axis_is_int() ? json(d.axis()->front()) : json(*d.axis());
  if (d.has_amax()) {
    size_t offset = 0;
    obj["amax"] = nest_amax(d.amax_values(), d.amax_shape(), 0, &offset);
  }
  if (d.scale_amax()) obj["scale_amax"] = *d.scale_amax();
  if (d.learn_amax()) obj["learn_amax"] = true;
  if (d.is_unsigned()) obj["unsigned"] = true;
  if (d.narrow_range() != defaults.narrow_range()) obj["narrow_range"] = d.narrow_range();
  if (d.calib_method() != defaults.calib_method()) obj["calib_method"] = d.calib_method();
  if (d.num_bins() != defaults.num_bins()) obj["num_bins"] = d.num_bins();
  if (d.skip_zeros() != defaults.skip_zeros()) obj["skip_zeros"] = d.skip_zeros();
  return obj;
}

// -- YAML ----------------------------------------------------------------------------------------

bool parse_number(const std::string& text, json* out) {
  try {
    size_t used = 0;
    long long as_int = std::stoll(text, &used);
    if (used == text.size()) {
      *out = as_int;
      return true;
    }
    double as_double = std::stod(text, &used);
    if (used == text.size()) {
      *out = as_double;
      return true;
    }
  } catch (const std::exception&) {
  }
  return false;
}

json yaml_scalar(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: always a string
  if (text == "null" || text == "~" || text == "Null" || text == "NULL" || text.empty()) {
    return nullptr;
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") return std::nan("");
  if (text == ".inf" || text == ".Inf" || text == "+.inf") return HUGE_VAL;
  if (text == "-.inf" || text == "-.Inf") return -HUGE_VAL;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  json number;
  return parse_number(text, &number) ? number : json(text);
}

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return yaml_scalar(node);
    case YAML::NodeType::Sequence: {
      json list = json::array();
      for (const auto& item : node) list.push_back(yaml_to_json(item));
      return list;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& item : node) obj[item.first.as<std::string>()] = yaml_to_json(item.second);
      return obj;
    }
    default:
      return nullptr;
  }
}

bool is_plain_yaml_string(const std::string& s) {
  if (s.empty()) return false;
  static const char* kReserved[] = {"null", "Null",  "NULL",  "~",     "true", "True",
                                    "TRUE", "false", "False", "FALSE", "yes",  "no",
                                    "on",   "off",   "Yes",   "No",    "On",   "Off"};
  for (const char* r : kReserved) {
    if (s == r) return false;
  }
  json number;
  if (parse_number(s, &number)) return false;  // would read back as a number
  return std::all_of(s.begin(), s.end(),
                     [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                              c == '-' || c == '/';
                     }) &&
         s.front() != '-' && s.front() != '.';
}

std::string yaml_scalar_text(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) {
    // PyYAML: ".nan", ".inf", "-.inf", and "1.0e-05" where Python's repr gives "1e-05".
    const double v = value.get<double>();
    if (std::isnan(v)) return ".nan";
    if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
    std::string text = detail::py_float_repr(v);
    const size_t e = text.find('e');
    if (e != std::string::npos && text.find('.') == std::string::npos) text.insert(e, ".0");
    return text;
  }
  const std::string s = value.get<std::string>();
  if (is_plain_yaml_string(s)) return s;
  const bool printable = std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
  if (!printable) {
    // As PyYAML: double quotes with escapes (a single-quoted scalar cannot hold control
    // characters, and folds line breaks). Found by tests/fuzz/fuzz_descriptor.
    std::string quoted = "\"";
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      switch (c) {
        case '\0':
          quoted += "\\0";
          break;
        case '\a':
          quoted += "\\a";
          break;
        case '\b':
          quoted += "\\b";
          break;
        case '\t':
          quoted += "\\t";
          break;
        case '\n':
          quoted += "\\n";
          break;
        case '\v':
          quoted += "\\v";
          break;
        case '\f':
          quoted += "\\f";
          break;
        case '\r':
          quoted += "\\r";
          break;
        case '\x1b':
          quoted += "\\e";
          break;
        case '"':
          quoted += "\\\"";
          break;
        case '\\':
          quoted += "\\\\";
          break;
        default:
          if (u < 0x20 || u == 0x7f) {
            const char* hex = "0123456789ABCDEF";
            quoted += std::string("\\x") + hex[u >> 4] + hex[u & 15];
          } else {
            quoted += c;
          }
      }
    }
    return quoted + "\"";
  }
  std::string quoted = "'";
  for (char c : s) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

// PyYAML's block layout for (nested) sequences: "- - 1\n  - 2\n".
void emit_yaml_sequence(const json& list, size_t column, bool inline_first, std::string* out) {
  if (list.empty()) {
    *out += "[]\n";
    return;
  }
  bool first = true;
  for (const auto& item : list) {
    if (!(first && inline_first)) *out += std::string(column, ' ');
    *out += "- ";
    if (item.is_array()) {
      emit_yaml_sequence(item, column + 2, true, out);
    } else {
      *out += yaml_scalar_text(item) + "\n";
    }
    first = false;
  }
}

}  // namespace

std::string QuantDescriptor::to_json() const {
  TORCH_CHECK_VALUE(
      !name() || is_utf8(*name()),
      "QuantDescriptor::to_json: the name is not valid UTF-8, which JSON cannot hold");
  // JSON has no NaN or Inf (nlohmann would write null and lose the amax); YAML has .nan / .inf.
  for (float a : amax_values()) {
    TORCH_CHECK_VALUE(std::isfinite(a), "QuantDescriptor::to_json: amax ", a,
                      " is not finite, which JSON cannot hold; use to_yaml");
  }
  return to_object(*this).dump(2);
}

QuantDescriptor QuantDescriptor::from_json(const std::string& text) {
  json obj;
  try {
    obj = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    TORCH_CHECK_VALUE(false, "QuantDescriptor::from_json: malformed JSON: ", e.what());
  }
  return from_object(obj, "QuantDescriptor::from_json");
}

std::string QuantDescriptor::to_yaml() const {
  std::string out;
  const json obj = to_object(*this);
  for (const auto& [key, value] : obj.items()) {  // nlohmann sorts keys
    out += key + ":";
    if (value.is_array() && !value.empty()) {
      out += "\n";
      emit_yaml_sequence(value, 0, false, &out);
    } else {
      out += " " + (value.is_array() ? std::string("[]") : yaml_scalar_text(value)) + "\n";
    }
  }
  return out;
}

QuantDescriptor QuantDescriptor::from_yaml(const std::string& text) {
  json object;
  try {  // parsing, and the conversion (a key that is not a scalar is a YAML::BadConversion)
    object = yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    TORCH_CHECK_VALUE(false, "QuantDescriptor::from_yaml: malformed YAML: ", e.what());
  }
  return from_object(object, "QuantDescriptor::from_yaml");
}

}  // namespace torchquant
