#pragma once
/// \file
/// Walking the TensorQuantizers of a model: names exactly as pytorch_quantization prints them
/// (`layer1.0.conv1._input_quantizer`), selections by exact name, glob, regex or predicate, and
/// the actions of upstream's `enable_quantization(layer).apply()` family on a selection.
///
/// Example:
/// \code
///   using namespace torchquant::utils;
///   disable_quantization(*model, QuantizerSelector::glob("*downsample*"));
///   set_quantizer_attributes(*model, QuantizerSelector::regex("_weight_quantizer$"),
///                            QuantizerAttributes().num_bits(4));
///   print_quantizer_summary(*model, std::cout);
/// \endcode

#include <torch/nn/module.h>

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace utils {

/// A quantizer and its dotted name in the model.
struct NamedQuantizer {
  std::string name;
  std::shared_ptr<nn::TensorQuantizerImpl> quantizer;
};

/// Every TensorQuantizer of `model` in named_modules() order (a quantizer shared by several
/// layers appears once, under its first name). Works for models not owned by a shared_ptr.
std::vector<NamedQuantizer> named_quantizers(torch::nn::Module& model);

/// Which quantizers an action applies to.
class QuantizerSelector {
 public:
  /// Every quantizer.
  static QuantizerSelector all();
  /// Exactly these dotted names.
  static QuantizerSelector names(std::vector<std::string> names);
  /// A shell glob over the dotted name (`*` any run, `?` one character).
  static QuantizerSelector glob(const std::string& pattern);
  /// An ECMAScript regex searched in the dotted name.
  static QuantizerSelector regex(const std::string& pattern);
  /// Any rule.
  static QuantizerSelector predicate(
      std::function<bool(const std::string&, const nn::TensorQuantizerImpl&)> fn);
  /// Quantizers of the module at `prefix` and below (`layer1.0`: its conv1, conv2, ...).
  static QuantizerSelector under(const std::string& prefix);

  bool matches(const std::string& name, const nn::TensorQuantizerImpl& quantizer) const;

 private:
  std::function<bool(const std::string&, const nn::TensorQuantizerImpl&)> fn_;
};

/// The quantizers `selector` matches, in model order.
std::vector<NamedQuantizer> select_quantizers(torch::nn::Module& model,
                                              const QuantizerSelector& selector);

// Actions on a selection; each returns how many quantizers it changed.
int64_t enable_quantization(torch::nn::Module& model,
                            const QuantizerSelector& selector = QuantizerSelector::all());
int64_t disable_quantization(torch::nn::Module& model,
                             const QuantizerSelector& selector = QuantizerSelector::all());
/// Quantizers without a calibrator are skipped.
int64_t enable_calibration(torch::nn::Module& model,
                           const QuantizerSelector& selector = QuantizerSelector::all());
int64_t disable_calibration(torch::nn::Module& model,
                            const QuantizerSelector& selector = QuantizerSelector::all());
/// The whole quantizer (bypass).
int64_t enable_quantizers(torch::nn::Module& model,
                          const QuantizerSelector& selector = QuantizerSelector::all());
int64_t disable_quantizers(torch::nn::Module& model,
                           const QuantizerSelector& selector = QuantizerSelector::all());

/// Descriptor attributes to set on a selection (unset ones are left alone).
struct QuantizerAttributes {
  TORCH_ARG(c10::optional<NumBits>, num_bits) = c10::nullopt;
  TORCH_ARG(c10::optional<bool>, is_unsigned) = c10::nullopt;
  TORCH_ARG(c10::optional<bool>, narrow_range) = c10::nullopt;
  /// New axes (empty vector: per tensor). Refused for a quantizer that already has an amax.
  TORCH_ARG(c10::optional<std::vector<int64_t>>, axis) = c10::nullopt;
};

int64_t set_quantizer_attributes(torch::nn::Module& model, const QuantizerSelector& selector,
                                 const QuantizerAttributes& attributes);

/// One row of the quantizer summary.
struct QuantizerInfo {
  std::string name;
  std::string bits;        ///< "8", "unsigned 4", "(4, 3)"
  std::string axis;        ///< "per-tensor" or "(0,)"
  std::string amax;        ///< "dynamic", "1.2345" or "[0.1000, 2.0000](64)"
  std::string calibrator;  ///< "MaxCalibrator", "HistogramCalibrator" or "-"
  std::string state;       ///< "disabled", or the stages on: "quant", "quant+calib", ...
};

std::vector<QuantizerInfo> quantizer_summary(torch::nn::Module& model);
/// A table of every quantizer.
void print_quantizer_summary(torch::nn::Module& model, std::ostream& stream);
/// The summary as a JSON array of objects with the QuantizerInfo fields.
std::string quantizer_summary_json(torch::nn::Module& model);

}  // namespace utils
}  // namespace torchquant
