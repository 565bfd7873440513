#pragma once
/// \file
/// Optimizer helpers for quantization-aware training (mirrors
/// `pytorch_quantization.optim.helper`): select parameters by regex on their dotted names, build
/// per-group optimizer options, freeze parameters, and fake-quantize weights in place.
///
/// Example:
/// \code
///   namespace tqo = torchquant::optim;
///   tqo::freeze_parameters(*model, {"^bn\\d*\\."});  // keep BatchNorm affine parameters
///   torch::optim::SGDOptions defaults(1e-3);
///   torch::optim::SGD sgd(
///       tqo::group_parameters(*model,
///                             {tqo::ParamGroupOptions({"clip\\.clip_value"}).lr(1e-2),
///                              tqo::ParamGroupOptions({"weight$", "bias$"}).momentum(0.9)},
///                             defaults),
///       defaults);
/// \endcode

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <torch/ordered_dict.h>

#include <string>
#include <vector>

namespace torchquant {
namespace optim {

/// The parameters of `model` whose dotted name (`layer1.0.conv1.weight`) contains a match of any
/// of `patterns` (ECMAScript regexes, searched as Python's `re.search`), in `named_parameters()`
/// order, each once (upstream yields a parameter once per matching pattern). An invalid regex is
/// an error naming it.
///
/// \code
///   auto amax = torchquant::optim::match_parameters(*model, {"clip_value_(min|max)$"});
///   for (const auto& p : amax) std::cout << p.key() << '\n';
/// \endcode
torch::OrderedDict<std::string, at::Tensor> match_parameters(
    const torch::nn::Module& model, const std::vector<std::string>& patterns);

/// One parameter group of group_parameters: the patterns selecting its parameters and the options
/// that differ from the optimizer's defaults (unset: the default).
struct ParamGroupOptions {
  /* implicit */ ParamGroupOptions(std::vector<std::string> patterns)
      : patterns_(std::move(patterns)) {}
  /// Regexes, as match_parameters.
  TORCH_ARG(std::vector<std::string>, patterns);
  TORCH_ARG(c10::optional<double>, lr) = c10::nullopt;
  /// SGD and RMSprop only (Adam's betas play this role: set them in the defaults).
  TORCH_ARG(c10::optional<double>, momentum) = c10::nullopt;
  TORCH_ARG(c10::optional<double>, weight_decay) = c10::nullopt;
};

/// Parameter groups for a LibTorch optimizer, one per entry of `groups` (upstream's
/// `group_parameters(model, patterns_list, lrs, momentums, weight_decays)`).
///
/// LibTorch has no per-group "overrides": every OptimizerParamGroup owns a complete options object
/// of the optimizer's own type (the optimizer static_casts it), so each group is a copy of
/// `defaults` with lr / momentum / weight_decay replaced, and one overload exists per optimizer
/// type: SGD, Adam, AdamW, RMSprop, Adagrad. Pass the same `defaults` to the optimizer. momentum
/// is an error for Adam, AdamW and Adagrad (they have none).
///
/// Errors (nothing is returned): no groups, a group without patterns, an invalid regex, a negative
/// lr / momentum / weight_decay, a group that matches no parameter, and a parameter matched by two
/// groups (upstream leaves that to the optimizer, which rejects it). Parameters matched by no
/// group are not optimized, as upstream.
///
/// \code
///   torch::optim::AdamOptions defaults(1e-4);
///   torch::optim::Adam adam(torchquant::optim::group_parameters(
///                               model,
///                               {torchquant::optim::ParamGroupOptions({"_quantizer"}).lr(1e-3),
///                                       torchquant::optim::ParamGroupOptions({"weight", "bias"})},
///                               defaults),
///                           defaults);
/// \endcode
std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::SGDOptions& defaults);
std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdamOptions& defaults);
std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdamWOptions& defaults);
std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::RMSpropOptions& defaults);
std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdagradOptions& defaults);

/// Sets requires_grad false on every parameter match_parameters selects; returns their names.
///
/// \code
///   auto frozen = torchquant::optim::freeze_parameters(*model, {"^conv1\\.", "\\.bn\\d\\."});
/// \endcode
std::vector<std::string> freeze_parameters(torch::nn::Module& model,
                                           const std::vector<std::string>& patterns);

/// Replaces the `weight` of every module that has a TensorQuantizer child `_weight_quantizer`
/// (QuantConvNd, QuantConvTransposeNd, QuantLinear, user layers following the convention) by
/// `_weight_quantizer(weight)`, in place and without autograd, as upstream (relax-and-round); the
/// quantizer is left as it is. Real quantization (fake_quant false) writes integers and warns.
/// Modules with a `_weight_quantizer` but no `weight` parameter (QuantLSTMCell) are skipped with a
/// warning; QuantLSTM's `_weight_quantizers` are not touched (upstream skips them too). Returns the
/// names of the modules changed.
///
/// \code
///   auto changed = torchquant::optim::quant_weight_inplace(*model);
/// \endcode
std::vector<std::string> quant_weight_inplace(torch::nn::Module& model);

}  // namespace optim
}  // namespace torchquant
