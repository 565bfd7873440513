// TensorRT calibration cache and the amax JSON table.
//
// The cache format, as TensorRT writes and reads it (no formal specification is published):
// - header `TRT-<version>-EntropyCalibration2`, version = the TensorRT version without dots
//   (8.6.1 -> 8601; TensorRT 10 writes e.g. 100900); TensorRT rejects a cache whose header does
//   not match its own version and calibrator;
// - then `<tensor name>: <hex>` per tensor, the hex text being the IEEE-754 bits of the float32
//   scale read as one big-endian number; TensorRT's dynamic range is scale * 127.
// Sources: a cache written by TensorRT 8.0 quoted in ultralytics/ultralytics#14121
// (`images: 3c010a14`, i.e. scale 1/127 for inputs in [0, 1]); onnxruntime's reader of TensorRT
// caches (microsoft/onnxruntime, onnxruntime/core/providers/tensorrt/
// tensorrt_execution_provider_utils.h: strtoul(hex, 16) -> float bits, range = scale * 127);
// NVIDIA TAO's QAT exporters, which write amax / 127.0 the same way (unpadded hex); and
// NVIDIA/TensorRT#625 on using caches made outside TensorRT. We pad to 8 digits (strtoul reads
// both) and accept 1 to 8 digits when reading.

#include "torchquant/utils/calib_cache.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "torchquant/nn/modules/tensor_quantizer.h"
#include "utils/module_device.h"

namespace torchquant {
namespace utils {
namespace {

using nlohmann::ordered_json;

template <typename ModuleT, typename QuantizerT>
std::vector<std::pair<std::string, QuantizerT*>> quantizers_of(ModuleT& model) {
  std::vector<std::pair<std::string, QuantizerT*>> out;
  model.apply([&](const std::string& name, ModuleT& m) {
    if (auto* q = dynamic_cast<QuantizerT*>(&m)) out.emplace_back(name, q);
  });
  return out;
}

// A name whose components never start with `_weight_quantizer`.
bool is_activation_quantizer(const std::string& name) {
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('.', start), name.size());
    if (name.compare(start, 17, "_weight_quantizer") == 0) return false;
    start = end + 1;
  }
  return true;
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// Why `q` cannot go to the cache, or "" when it can; sets `amax` (times scale_amax) otherwise.
std::string unsupported_reason(const nn::TensorQuantizerImpl& q, float* amax) {
  if (!q.has_amax()) return "dynamic amax (no _amax; calibrate first)";
  if (q.amax().numel() != 1) {
    return "per-channel amax of shape " + shape_str(q.amax()) +
           " (the cache holds one scale per tensor)";
  }
  if (!q.is_enabled()) return "disabled (kept in float)";
  if (q.num_bits().is_e4m3() || q.num_bits().bits() != 8 || q.is_unsigned()) {
    return "num_bits " + q.num_bits().str() + (q.is_unsigned() ? " unsigned" : "") +
           " (the cache is for signed 8-bit integers)";
  }
  if (q.pre_quant_scale().defined()) {
    return "pre_quant_scale is set (TensorRT would quantize the unscaled tensor)";
  }
  double value = q.amax().detach().to(at::kCPU, at::kDouble).item<double>();
  if (q.scale_amax()) value *= *q.scale_amax();
  if (!std::isfinite(value) || value <= 0) {
    std::ostringstream s;
    s << "amax " << value << " is not a finite positive number";
    return s.str();
  }
  *amax = static_cast<float>(value);
  return "";
}

std::string trim(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string read_text(const std::string& path, const char* fn) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), fn, ": cannot open '", path, "' for reading");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text, const char* fn) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  TORCH_CHECK(out.good(), fn, ": cannot open '", path, "' for writing");
  out << text;
  out.close();
  TORCH_CHECK(out.good(), fn, ": error while writing '", path, "'");
}

ordered_json json_value(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return static_cast<double>(v);
}

float value_from_json(const ordered_json& v, const std::string& where) {
  if (v.is_number()) return static_cast<float>(v.get<double>());
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<float>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<float>::infinity();
    if (s == "-inf") return -std::numeric_limits<float>::infinity();
  }
  TORCH_CHECK_VALUE(false, where,
                    ": an amax value must be a number, \"nan\", \"inf\" or \"-inf\", ", "got ",
                    v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

std::string calib_cache_hex(float scale) {
  uint32_t bits = 0;
  std::memcpy(&bits, &scale, sizeof(bits));
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", bits);
  return text;
}

std::string CalibCacheReport::str() const {
  std::ostringstream s;
  s << "calibration cache: " << written.size() << " written, " << unmapped.size() << " unmapped, "
    << unsupported.size() << " unsupported";
  for (const auto& [q, t] : written) s << "\n  written: " << q << " -> " << t;
  for (const auto& q : unmapped) s << "\n  unmapped: " << q;
  for (const auto& q : unsupported) s << "\n  unsupported: " << q;
  return s.str();
}

CalibCacheReport collect_calib_cache(const torch::nn::Module& model,
                                     const CalibCacheOptions& options) {
  constexpr const char* fn = "torchquant::utils::collect_calib_cache";
  TORCH_CHECK_VALUE(options.trt_version() > 0, fn, ": trt_version must be positive (8601 for ",
                    "TensorRT 8.6.1), got ", options.trt_version());
  const auto quantizers =
      quantizers_of<const torch::nn::Module, const nn::TensorQuantizerImpl>(model);
  std::vector<std::pair<std::string, const nn::TensorQuantizerImpl*>> activations;
  for (const auto& entry : quantizers) {
    if (is_activation_quantizer(entry.first)) activations.push_back(entry);
  }
  // Every key of the map names an activation quantizer (a typo would silently drop a tensor).
  {
    std::vector<std::string> unknown;
    for (const auto& [q, t] : options.tensor_names()) {
      bool found = false;
      for (const auto& a : activations) found = found || a.first == q;
      if (!found) unknown.push_back(q);
    }
    if (!unknown.empty()) {
      std::ostringstream msg;
      msg << fn << ": tensor_names lists " << unknown.size()
          << " name(s) that are not activation quantizers of the model:";
      for (const auto& u : unknown) msg << " '" << u << "'";
      msg << " (the model has " << activations.size() << " activation quantizers";
      for (size_t i = 0; i < activations.size() && i < 5; ++i) {
        msg << (i == 0 ? ": '" : ", '") << activations[i].first << "'";
      }
      msg << (activations.size() > 5 ? ", ...)" : ")");
      TORCH_CHECK_VALUE(false, msg.str());
    }
  }

  CalibCacheReport report;
  report.cache.version = options.trt_version();
  std::vector<std::string> conflicts;
  std::map<std::string, std::string> writer;  // tensor name -> first quantizer written to it
  for (const auto& [name, q] : activations) {
    float amax = 0;
    const std::string reason = unsupported_reason(*q, &amax);
    if (!reason.empty()) {
      report.unsupported.push_back(name + ": " + reason);
      continue;
    }
    c10::optional<std::string> tensor;
    auto it = options.tensor_names().find(name);
    if (it != options.tensor_names().end()) {
      tensor = it->second;
    } else if (options.tensor_name_fn()) {
      tensor = options.tensor_name_fn()(name);
    }
    if (!tensor) {
      report.unmapped.push_back(name);
      continue;
    }
    TORCH_CHECK_VALUE(!tensor->empty() && tensor->find_first_of("\r\n") == std::string::npos, fn,
                      ": the tensor name for '", name, "' must be non-empty and on one line, got '",
                      *tensor, "'");
    const float scale = amax / 127.0f;
    auto [pos, inserted] = report.cache.scales.emplace(*tensor, scale);
    if (!inserted && calib_cache_hex(pos->second) != calib_cache_hex(scale)) {
      std::ostringstream s;
      s << "'" << *tensor << "' gets scale " << pos->second << " from '" << writer[*tensor]
        << "' but " << scale << " from '" << name << "'";
      conflicts.push_back(s.str());
      continue;
    }
    if (inserted) writer[*tensor] = name;
    report.written.emplace_back(name, *tensor);
  }
  if (!conflicts.empty()) {
    std::ostringstream msg;
    msg << fn << ": quantizers mapped to the same tensor have different amax (share one "
        << "quantizer, or map them to different tensors):";
    for (const auto& c : conflicts) msg << "\n  " << c;
    TORCH_CHECK_VALUE(false, msg.str());
  }
  if (options.strict() && (!report.unmapped.empty() || !report.unsupported.empty())) {
    TORCH_CHECK_VALUE(false, fn, ": strict: ", report.unmapped.size() + report.unsupported.size(),
                      " activation quantizer(s) cannot be written\n", report.str());
  }
  return report;
}

void write_calib_cache(const std::string& path, const CalibCache& cache) {
  constexpr const char* fn = "torchquant::utils::write_calib_cache";
  TORCH_CHECK_VALUE(cache.version > 0, fn, ": version must be positive, got ", cache.version);
  TORCH_CHECK_VALUE(
      !cache.algorithm.empty() && cache.algorithm.find_first_of(" \t\r\n-") == std::string::npos,
      fn, ": algorithm must be one word (EntropyCalibration2), got '", cache.algorithm, "'");
  std::ostringstream text;
  text << "TRT-" << cache.version << "-" << cache.algorithm << "\n";
  for (const auto& [tensor, scale] : cache.scales) {
    TORCH_CHECK_VALUE(!tensor.empty() && tensor.find_first_of("\r\n") == std::string::npos, fn,
                      ": tensor names must be non-empty and on one line, got '", tensor, "'");
    TORCH_CHECK_VALUE(std::isfinite(scale) && scale >= 0, fn, ": the scale of '", tensor, "' is ",
                      scale, "; expected a finite float32 >= 0");
    text << tensor << ": " << calib_cache_hex(scale) << "\n";
  }
  write_text(path, text.str(), fn);
}

CalibCacheReport write_calib_cache(const torch::nn::Module& model, const std::string& path,
                                   const CalibCacheOptions& options) {
  CalibCacheReport report = collect_calib_cache(model, options);
  write_calib_cache(path, report.cache);
  return report;
}

CalibCache read_calib_cache(const std::string& path) {
  constexpr const char* fn = "torchquant::utils::read_calib_cache";
  const std::string text = read_text(path, fn);
  std::istringstream in(text);
  std::string line;
  CalibCache cache;
  cache.scales.clear();
  size_t line_no = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!header) {
      // TRT-<digits>-<algorithm>
      const std::string h = trim(line);
      const size_t dash = h.find('-', 4);
      bool ok = h.compare(0, 4, "TRT-") == 0 && dash != std::string::npos && dash > 4 &&
                dash + 1 < h.size();
      for (size_t i = 4; ok && i < dash; ++i) ok = std::isdigit(static_cast<unsigned char>(h[i]));
      for (size_t i = dash + 1; ok && i < h.size(); ++i) {
        ok = std::isalnum(static_cast<unsigned char>(h[i])) || h[i] == '_';
      }
      TORCH_CHECK_VALUE(ok && dash - 4 <= 18, fn, ": '", path, "' line ", line_no,
                        ": expected the header TRT-<version>-<algorithm> (e.g. "
                        "TRT-8601-EntropyCalibration2), got '",
                        line, "'");
      cache.version = std::stoll(h.substr(4, dash - 4));
      cache.algorithm = h.substr(dash + 1);
      header = true;
      continue;
    }
    if (trim(line).empty()) continue;
    const size_t sep = line.rfind(": ");
    TORCH_CHECK_VALUE(sep != std::string::npos, fn, ": '", path, "' line ", line_no,
                      ": expected '<tensor name>: <hex scale>', got '", line, "'");
    const std::string name = line.substr(0, sep);
    const std::string value = trim(line.substr(sep + 2));
    TORCH_CHECK_VALUE(!trim(name).empty(), fn, ": '", path, "' line ", line_no,
                      ": empty tensor name in '", line, "'");
    bool hex = !value.empty() && value.size() <= 8;
    for (char c : value) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
    TORCH_CHECK_VALUE(hex, fn, ": '", path, "' line ", line_no, ": the scale of '", name,
                      "' must be 1 to 8 hex digits (float32 bits), got '", value, "'");
    const auto bits = static_cast<uint32_t>(std::stoul(value, nullptr, 16));
    float scale = 0;
    std::memcpy(&scale, &bits, sizeof(scale));
    TORCH_CHECK_VALUE(std::isfinite(scale) && scale >= 0, fn, ": '", path, "' line ", line_no,
                      ": the scale of '", name, "' (", value, ") is ", scale,
                      "; expected a finite float32 >= 0");
    TORCH_CHECK_VALUE(cache.scales.emplace(name, scale).second, fn, ": '", path, "' line ", line_no,
                      ": tensor '", name, "' appears twice");
  }
  TORCH_CHECK_VALUE(header, fn, ": '", path, "' is empty (expected a TRT-<version>-<algorithm> ",
                    "header)");
  return cache;
}

void write_amax_json(const torch::nn::Module& model, const std::string& path) {
  ordered_json list = ordered_json::array();
  for (const auto& [name, q] :
       quantizers_of<const torch::nn::Module, const nn::TensorQuantizerImpl>(model)) {
    ordered_json entry;
    entry["name"] = name;
    if (q->has_amax()) {
      const at::Tensor amax = q->amax().detach().to(at::kCPU, at::kFloat).contiguous();
      entry["shape"] = amax.sizes().vec();
      ordered_json values = ordered_json::array();
      const float* data = amax.data_ptr<float>();
      for (int64_t i = 0; i < amax.numel(); ++i) values.push_back(json_value(data[i]));
      entry["amax"] = std::move(values);
    } else {
      entry["shape"] = nullptr;
      entry["amax"] = nullptr;
    }
    if (q->num_bits().is_e4m3()) {
      entry["num_bits"] = {4, 3};
    } else {
      entry["num_bits"] = q->num_bits().bits();
    }
    entry["axis"] = q->axis() ? ordered_json(*q->axis()) : ordered_json(nullptr);
    entry["unsigned"] = q->is_unsigned();
    entry["narrow_range"] = q->narrow_range();
    entry["enabled"] = q->is_enabled();
    list.push_back(std::move(entry));
  }
  ordered_json doc;
  doc["format"] = "torchquant-amax";
  doc["version"] = 1;
  doc["quantizers"] = std::move(list);
  write_text(path, doc.dump(2) + "\n", "torchquant::utils::write_amax_json");
}

std::vector<AmaxRecord> read_amax_json(const std::string& path) {
  constexpr const char* fn = "torchquant::utils::read_amax_json";
  const std::string text = read_text(path, fn);
  ordered_json doc;
  try {
    doc = ordered_json::parse(text);
  } catch (const ordered_json::exception& e) {
    TORCH_CHECK_VALUE(false, fn, ": '", path, "' is not valid JSON: ", e.what());
  }
  TORCH_CHECK_VALUE(doc.is_object() && doc.value("format", "") == "torchquant-amax", fn, ": '",
                    path, "' is not an amax table (expected \"format\": \"torchquant-amax\")");
  TORCH_CHECK_VALUE(doc.contains("version") && doc["version"] == 1, fn, ": '", path,
                    "' has version ",
                    doc.value("version", ordered_json())
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    ", this reader knows 1");
  TORCH_CHECK_VALUE(doc.contains("quantizers") && doc["quantizers"].is_array(), fn, ": '", path,
                    "' has no \"quantizers\" list");
  std::vector<AmaxRecord> records;
  size_t index = 0;
  for (const auto& e : doc["quantizers"]) {
    const std::string where =
        std::string(fn) + ": '" + path + "' quantizers[" + std::to_string(index++) + "]";
    TORCH_CHECK_VALUE(e.is_object() && e.contains("name") && e["name"].is_string(), where,
                      ": expected an object with a string \"name\"");
    AmaxRecord r;
    r.name = e["name"].get<std::string>();
    const std::string at_name = where + " ('" + r.name + "')";
    const ordered_json amax = e.value("amax", ordered_json());
    const ordered_json shape = e.value("shape", ordered_json());
    TORCH_CHECK_VALUE(amax.is_null() == shape.is_null(), at_name,
                      ": \"amax\" and \"shape\" must both be null (dynamic) or both be lists");
    if (!amax.is_null()) {
      TORCH_CHECK_VALUE(amax.is_array() && shape.is_array(), at_name,
                        ": \"amax\" and \"shape\" must be lists");
      std::vector<int64_t> sizes;
      int64_t numel = 1;
      for (const auto& d : shape) {
        TORCH_CHECK_VALUE(d.is_number_integer() && d.get<int64_t>() >= 0, at_name,
                          ": \"shape\" must hold non-negative integers, got ",
                          shape.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        sizes.push_back(d.get<int64_t>());
        numel *= sizes.back();
      }
      TORCH_CHECK_VALUE(static_cast<int64_t>(amax.size()) == numel, at_name, ": \"amax\" has ",
                        amax.size(), " values but shape ",
                        shape.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        " needs ", numel);
      std::vector<float> values;
      for (const auto& v : amax) values.push_back(value_from_json(v, at_name));
      r.amax = at::tensor(values, at::kFloat).reshape(sizes);
    }
    const ordered_json bits = e.value("num_bits", ordered_json(8));
    if (bits.is_number_integer()) {
      r.num_bits = std::to_string(bits.get<int64_t>());
    } else {
      TORCH_CHECK_VALUE(bits == ordered_json({4, 3}), at_name,
                        ": \"num_bits\" must be an integer or [4, 3], got ",
                        bits.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      r.num_bits = "(4, 3)";
    }
    const ordered_json axis = e.value("axis", ordered_json());
    if (!axis.is_null()) {
      TORCH_CHECK_VALUE(axis.is_array(), at_name, ": \"axis\" must be null or a list");
      for (const auto& a : axis) {
        TORCH_CHECK_VALUE(a.is_number_integer(), at_name, ": \"axis\" must hold integers");
        r.axis.push_back(a.get<int64_t>());
      }
    }
    for (const auto& [key, member] : {std::pair<const char*, bool*>{"unsigned", &r.is_unsigned},
                                      {"narrow_range", &r.narrow_range},
                                      {"enabled", &r.enabled}}) {
      if (!e.contains(key)) continue;
      TORCH_CHECK_VALUE(e[key].is_boolean(), at_name, ": \"", key, "\" must be true or false");
      *member = e[key].get<bool>();
    }
    records.push_back(std::move(r));
  }
  return records;
}

std::vector<std::string> load_amax_json(torch::nn::Module& model, const std::string& path) {
  constexpr const char* fn = "torchquant::utils::load_amax_json";
  const std::vector<AmaxRecord> records = read_amax_json(path);
  std::unordered_map<std::string, torch::nn::Module*> modules;
  model.apply([&](const std::string& name, torch::nn::Module& m) { modules.emplace(name, &m); });
  std::vector<std::string> problems;
  std::vector<std::pair<const AmaxRecord*, nn::TensorQuantizerImpl*>> plan;
  for (const AmaxRecord& r : records) {
    auto it = modules.find(r.name);
    auto* q = it == modules.end() ? nullptr : dynamic_cast<nn::TensorQuantizerImpl*>(it->second);
    if (q == nullptr) {
      problems.push_back("'" + r.name + "' is not a TensorQuantizer of the model");
      continue;
    }
    if (!r.amax.defined()) continue;
    if (q->has_amax() && q->amax().sizes() != r.amax.sizes()) {
      problems.push_back("'" + r.name + "' has amax shape " + shape_str(r.amax) +
                         " in the file but " + shape_str(q->amax()) + " in the model");
      continue;
    }
    plan.emplace_back(&r, q);
  }
  if (!problems.empty()) {
    std::ostringstream msg;
    msg << fn << ": '" << path << "' does not match the model; nothing was changed:";
    for (const auto& p : problems) msg << "\n  " << p;
    TORCH_CHECK_VALUE(false, msg.str());
  }
  std::vector<std::string> names;
  for (const auto& [r, q] : plan) {
    const bool created = !q->has_amax();
    const c10::Device device = detail::nearest_device(r->name, modules);
    q->set_amax(r->amax.to(device));
    if (created && q->amax().device() != device) q->to(device);
    names.push_back(r->name);
  }
  return names;
}

}  // namespace utils
}  // namespace torchquant
