#pragma once
/// \file
/// What every quantized layer shares: the descriptors it is built with, per-class default
/// descriptors settable at run time (and a scoped guard that restores them), and the process-wide
/// switch of `quant_modules::initialize()` / `deactivate()`.

#include <torch/arg.h>
#include <torch/nn/module.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "torchquant/quant_descriptor.h"

namespace torchquant {
namespace nn {

/// The descriptors of a quantized layer; unset ones take the class default at construction.
///
/// \code
///   torchquant::nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 16, 3),
///                                    torchquant::nn::QuantLayerOptions().quant_desc_input(
///                                        torchquant::QuantDescriptor().calib_method("histogram")));
/// \endcode
struct QuantLayerOptions {
  TORCH_ARG(c10::optional<QuantDescriptor>, quant_desc_input) = c10::nullopt;
  TORCH_ARG(c10::optional<QuantDescriptor>, quant_desc_weight) = c10::nullopt;
};

/// Per-class default descriptors (`Layer::set_default_quant_desc_input(...)`), thread-safe.
/// `Layer` provides `initial_quant_desc_input()` and, with a weight, `initial_quant_desc_weight()`.
template <typename Layer>
class QuantDefaults {
 public:
  static QuantDescriptor default_quant_desc_input() { return get(input()); }
  static QuantDescriptor default_quant_desc_weight() { return get(weight()); }
  /// Changes the input descriptor of layers of this class constructed afterwards.
  static void set_default_quant_desc_input(QuantDescriptor desc) { set(input(), std::move(desc)); }
  /// Changes the weight descriptor of layers of this class constructed afterwards.
  static void set_default_quant_desc_weight(QuantDescriptor desc) {
    set(weight(), std::move(desc));
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static QuantDescriptor& input() {
    static QuantDescriptor d = Layer::initial_quant_desc_input();
    return d;
  }
  static QuantDescriptor& weight() {
    static QuantDescriptor d = Layer::initial_quant_desc_weight();
    return d;
  }
  static QuantDescriptor get(QuantDescriptor& slot) {
    std::lock_guard<std::mutex> lock(mutex());
    return slot;
  }
  static void set(QuantDescriptor& slot, QuantDescriptor desc) {
    std::lock_guard<std::mutex> lock(mutex());
    slot = std::move(desc);
  }
};

/// Sets a layer class's default descriptors for a scope and restores the previous ones after.
///
/// \code
///   {
///     torchquant::nn::ScopedDefaultQuantDesc<torchquant::nn::QuantConv2dImpl> guard(
///         torchquant::QuantDescriptor().calib_method("histogram"), c10::nullopt);
///     torchquant::nn::QuantConv2d conv(torch::nn::Conv2dOptions(3, 8, 3));  // histogram input
///   }  // the previous default is back
/// \endcode
template <typename Layer>
class ScopedDefaultQuantDesc {
 public:
  ScopedDefaultQuantDesc(c10::optional<QuantDescriptor> input,
                         c10::optional<QuantDescriptor> weight)
      : saved_input_(Layer::default_quant_desc_input()),
        saved_weight_(Layer::default_quant_desc_weight()) {
    if (input) Layer::set_default_quant_desc_input(*input);
    if (weight) Layer::set_default_quant_desc_weight(*weight);
  }
  ~ScopedDefaultQuantDesc() {
    Layer::set_default_quant_desc_input(saved_input_);
    Layer::set_default_quant_desc_weight(saved_weight_);
  }
  ScopedDefaultQuantDesc(const ScopedDefaultQuantDesc&) = delete;
  ScopedDefaultQuantDesc& operator=(const ScopedDefaultQuantDesc&) = delete;

 private:
  QuantDescriptor saved_input_;
  QuantDescriptor saved_weight_;
};

/// A module whose forward uses TensorQuantizers held in typed members (the quant layers, QuantAdd,
/// QuantConcat). rebind_quantizer makes `quantizer` this module's quantizer `name`, both as child
/// and as the member its forward calls, so that several layers can share one quantizer.
class QuantizerOwner {
 public:
  virtual ~QuantizerOwner() = default;
  /// False when this module has no quantizer of that name.
  virtual bool rebind_quantizer(const std::string& name,
                                const std::shared_ptr<torch::nn::Module>& quantizer) = 0;
};

namespace quant_modules {
/// Quant layers quantize (the default; pytorch_quantization's `quant_modules.initialize()`).
void initialize();
/// Quant layers (and QuantAdd / QuantConcat) compute exactly as their float twins until
/// initialize(); TensorQuantizers used on their own are not affected.
void deactivate();
/// Whether quant layers quantize.
bool is_active();
}  // namespace quant_modules

}  // namespace nn
}  // namespace torchquant
