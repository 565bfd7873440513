#pragma once
/// \file
/// Handing calibrated ranges to TensorRT without Q/DQ nodes: the text calibration cache that
/// TensorRT's `IInt8EntropyCalibrator2::readCalibrationCache` returns to the builder (also
/// `trtexec --calib=<file>`), and a JSON table of every quantizer's amax.
///
/// Cache format (docs/workflow.md, "TensorRT calibration cache"): a first line
/// `TRT-<version>-EntropyCalibration2`, then one line per tensor `<tensor name>: <hex>`, where
/// `<hex>` is the IEEE-754 bit pattern of the float32 scale `amax / 127` written as a big-endian
/// hexadecimal number (8 lowercase digits here; readers accept 1 to 8). TensorRT recovers the
/// dynamic range as `scale * 127`. TensorRT only accepts a cache whose version matches its own
/// (`8601` for 8.6.1, `100900` for 10.9.0).
///
/// Example:
/// \code
///   auto report = torchquant::utils::write_calib_cache(
///       model, "model.cache",
///       torchquant::utils::CalibCacheOptions().tensor_names(
///           {{"conv1._input_quantizer", "input"},
///            {"layer1.0.conv1._input_quantizer", "/layer1/layer1.0/relu/Relu_output_0"}}));
///   std::cout << report.str();
///   auto cache = torchquant::utils::read_calib_cache("model.cache");  // scales by tensor name
/// \endcode

#include <torch/arg.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace torchquant {
namespace utils {

/// Quantizer name (`layer1.0.conv1._input_quantizer`) -> deployment tensor name.
using TensorNameMap = std::map<std::string, std::string>;
/// Quantizer name -> deployment tensor name, or nullopt when the quantizer is not exported.
using TensorNameFn = std::function<c10::optional<std::string>(const std::string&)>;

/// The contents of a TensorRT calibration cache.
struct CalibCache {
  /// The TensorRT version of the header (`TRT-8601-...` -> 8601).
  int64_t version = 8601;
  /// The calibrator name of the header.
  std::string algorithm = "EntropyCalibration2";
  /// float32 scale (amax / 127) per tensor name.
  std::map<std::string, float> scales;
};

/// Options of write_calib_cache / collect_calib_cache.
struct CalibCacheOptions {
  /// The version number written in the header (TensorRT 8.6.1: 8601).
  TORCH_ARG(int64_t, trt_version) = 8601;
  /// Quantizer name -> tensor name; every key must name an activation quantizer of the model.
  TORCH_ARG(TensorNameMap, tensor_names) = {};
  /// Consulted for quantizers that `tensor_names` does not list.
  TORCH_ARG(TensorNameFn, tensor_name_fn) = nullptr;
  /// false: quantizers that cannot be written (unmapped, per channel, dynamic, ...) are skipped and
  /// listed in the report; true: any of them is an error listing them all.
  TORCH_ARG(bool, strict) = false;
};

/// What collect_calib_cache / write_calib_cache did, by quantizer name.
struct CalibCacheReport {
  /// The cache (written to the file by write_calib_cache).
  CalibCache cache;
  /// (quantizer name, tensor name) of every quantizer written.
  std::vector<std::pair<std::string, std::string>> written;
  /// Activation quantizers with an amax that neither tensor_names nor tensor_name_fn maps.
  std::vector<std::string> unmapped;
  /// "name: reason" for activation quantizers that cannot go to the cache: dynamic amax (no
  /// `_amax`), per-channel amax, disabled, not 8-bit signed integer, amax not finite and > 0.
  std::vector<std::string> unsupported;
  /// A readable summary.
  std::string str() const;
};

/// The cache of `model` without writing it. Activation quantizers are the TensorQuantizers whose
/// dotted name has no component starting with `_weight_quantizer` (`_input_quantizer`,
/// QuantAdd's `_input0_quantizer` / `_input1_quantizer`, QuantConcat's, LSTM
/// `_input_quantizers.N`). Two quantizers mapped to one tensor must have the same scale (e.g.
/// shared by a sharing rule): it is written once; different scales are an error.
CalibCacheReport collect_calib_cache(const torch::nn::Module& model,
                                     const CalibCacheOptions& options = {});

/// collect_calib_cache, then writes the cache to `path`.
///
/// \code
///   auto opts = torchquant::utils::CalibCacheOptions().trt_version(100900).tensor_name_fn(
///       [](const std::string& q) -> c10::optional<std::string> { return lookup_onnx_name(q); });
///   auto report = torchquant::utils::write_calib_cache(model, "model.cache", opts);
///   TORCH_CHECK(report.unmapped.empty(), report.str());
/// \endcode
CalibCacheReport write_calib_cache(const torch::nn::Module& model, const std::string& path,
                                   const CalibCacheOptions& options = {});

/// Writes `cache` (header, then one line per tensor in name order).
void write_calib_cache(const std::string& path, const CalibCache& cache);

/// Reads a TensorRT calibration cache (any `TRT-<version>-<algorithm>` header). Malformed lines
/// (no `: `, an empty name, a value that is not 1 to 8 hex digits, a repeated name) are errors
/// naming the line number; blank lines are skipped.
///
/// \code
///   auto cache = torchquant::utils::read_calib_cache("model.cache");
///   float amax = cache.scales.at("input") * 127.0f;
/// \endcode
CalibCache read_calib_cache(const std::string& path);

/// The hexadecimal text of a float32 in the cache (`0.0078740157f` -> `3c010204`).
std::string calib_cache_hex(float scale);

/// One quantizer in the amax JSON table.
struct AmaxRecord {
  /// Dotted quantizer name.
  std::string name;
  /// The `_amax` tensor (float32, CPU), undefined for a dynamic amax.
  at::Tensor amax;
  /// `8`, or `(4, 3)` for E4M3.
  std::string num_bits;
  /// The quantized axes; empty for per tensor.
  std::vector<int64_t> axis;
  bool is_unsigned = false;
  bool narrow_range = false;
  bool enabled = true;
};

/// Writes every TensorQuantizer of `model` (name, amax values and shape, num_bits, axis,
/// unsigned, narrow_range, enabled) as JSON:
/// `{"format": "torchquant-amax", "version": 1, "quantizers": [{"name": ..., "shape": [8, 1, 1,
/// 1], "amax": [...], ...}]}`; amax values are flat in row-major order, `null` (shape too) for a
/// dynamic amax; non-finite values are written as the strings "nan", "inf", "-inf".
///
/// \code
///   torchquant::utils::write_amax_json(model, "amax.json");
///   for (const auto& r : torchquant::utils::read_amax_json("amax.json")) std::cout << r.name;
/// \endcode
void write_amax_json(const torch::nn::Module& model, const std::string& path);

/// Reads a table written by write_amax_json, in file order; malformed files are errors naming the
/// entry and key.
std::vector<AmaxRecord> read_amax_json(const std::string& path);

/// Sets the amax of every quantizer of `model` listed in `path` (a dynamic entry leaves the
/// quantizer as it is). Validates first: a name that is not a quantizer of the model, or an amax
/// whose shape differs from the quantizer's existing one, is an error and nothing is changed.
/// Returns the names set.
std::vector<std::string> load_amax_json(torch::nn::Module& model, const std::string& path);

}  // namespace utils
}  // namespace torchquant
