#pragma once
/// \file
/// Replacing the torch::nn layers of an existing model with quant layers: the C++ answer to
/// pytorch_quantization's `quant_modules.initialize()` (which monkey-patches torch.nn; C++ cannot).
///
/// Three mechanisms, from most to least complete (docs/quant_modules.md):
/// 1. Write the model against the quant types (or a namespace alias): every layer is reached;
///    `quant_modules::deactivate()` makes it compute exactly as the float model.
/// 2. `replace_with_quant_layers(model)`: rebuilds every Sequential / ModuleList / ModuleDict in
///    place (so every holder of the container sees the change) with quant twins that share the
///    float weights. A layer held by a typed member of a user module (`torch::nn::Conv2d conv1`)
///    cannot be reached: the user's forward calls that member. The report lists it.
/// 3. `register_quant_factory` for a user's own layer types.
///
/// Example:
/// \code
///   auto report = torchquant::quant_modules::replace_with_quant_layers(
///       *model, torchquant::quant_modules::ReplaceOptions().ignore_patterns({"^head\\."}));
///   std::cout << report.str();
/// \endcode

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "torchquant/nn/modules/quant_layer.h"

namespace torchquant {
namespace quant_modules {

using nn::quant_modules::deactivate;
using nn::quant_modules::initialize;
using nn::quant_modules::is_active;

/// Which layers replace_with_quant_layers leaves alone (TensorRT QAT scripts' ignore policy).
struct ReplaceOptions {
  /// Exact dotted names (`layer1.0.downsample.0`).
  TORCH_ARG(std::vector<std::string>, ignore_names) = {};
  /// ECMAScript regexes searched in the dotted name.
  TORCH_ARG(std::vector<std::string>, ignore_patterns) = {};
  /// Any other rule: true leaves the layer alone.
  TORCH_ARG(std::function<bool(const std::string&, const torch::nn::Module&)>, ignore_if) = nullptr;
  /// Descriptors of the quant layers (unset: each class's defaults).
  TORCH_ARG(nn::QuantLayerOptions, quant) = {};
};

/// What replace_with_quant_layers did, by dotted module name.
struct ReplaceReport {
  /// Replaced by a quant twin that shares the float tensors: "name (Conv2d -> QuantConv2d)".
  std::vector<std::string> swapped;
  /// Left alone by the ignore policy.
  std::vector<std::string> ignored;
  /// Supported layers that could not be reached (typed members of user modules): still float.
  std::vector<std::string> unreachable;
  /// A readable summary.
  std::string str() const;
};

/// Makes the quant twin of a float module (sharing its tensors), or returns nullopt when the
/// module is not of the factory's type.
using QuantFactory = std::function<c10::optional<torch::nn::AnyModule>(
    const std::shared_ptr<torch::nn::Module>&, const nn::QuantLayerOptions&)>;

/// Adds a factory, tried before the built-in ones (Conv, ConvTranspose, Linear, pooling,
/// InstanceNorm).
///
/// \code
///   torchquant::quant_modules::register_quant_factory(
///       [](const std::shared_ptr<torch::nn::Module>& m, const auto& quant)
///           -> c10::optional<torch::nn::AnyModule> {
///         if (auto mine = std::dynamic_pointer_cast<MyConvImpl>(m)) {
///           return torch::nn::AnyModule(MyQuantConv(mine, quant));
///         }
///         return c10::nullopt;
///       });
/// \endcode
void register_quant_factory(QuantFactory factory);

/// Removes the factories added with register_quant_factory.
void clear_quant_factories();

/// The quant twin of `module` from the registered and built-in factories, or nullopt.
c10::optional<torch::nn::AnyModule> make_quant_twin(
    const std::shared_ptr<torch::nn::Module>& module, const nn::QuantLayerOptions& quant = {});

/// Replaces, in every Sequential / ModuleList / ModuleDict of `model` (recursively), each layer a
/// factory supports by its quant twin; see the file comment for what it cannot reach.
ReplaceReport replace_with_quant_layers(torch::nn::Module& model,
                                        const ReplaceOptions& options = {});

}  // namespace quant_modules
}  // namespace torchquant
