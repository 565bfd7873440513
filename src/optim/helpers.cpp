#include "torchquant/optim/helpers.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <memory>
#include <regex>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace optim {
namespace {

std::vector<std::regex> compile(const std::vector<std::string>& patterns, const char* fn) {
  std::vector<std::regex> out;
  out.reserve(patterns.size());
  for (const auto& p : patterns) {
    try {
      out.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      TORCH_CHECK_VALUE(false, fn, ": invalid regex '", p, "': ", e.what());
    }
  }
  return out;
}

torch::OrderedDict<std::string, at::Tensor> match(const torch::nn::Module& model,
                                                  const std::vector<std::regex>& regexes) {
  torch::OrderedDict<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) {
    for (const auto& re : regexes) {
      if (std::regex_search(p.key(), re)) {
        out.insert(p.key(), p.value());
        break;
      }
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", '" : "'") << v[i] << "'";
  s << "]";
  return s.str();
}

template <typename O, typename = void>
struct HasMomentum : std::false_type {};
template <typename O>
struct HasMomentum<O, std::void_t<decltype(std::declval<O&>().momentum(0.0))>> : std::true_type {};

template <typename O>
std::vector<torch::optim::OptimizerParamGroup> make_groups(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups, const O& defaults,
    const char* optimizer) {
  constexpr const char* fn = "torchquant::optim::group_parameters";
  TORCH_CHECK_VALUE(!groups.empty(), fn, ": no groups given");
  std::vector<torch::optim::OptimizerParamGroup> out;
  std::unordered_map<const c10::TensorImpl*, std::pair<size_t, std::string>> owner;
  for (size_t g = 0; g < groups.size(); ++g) {
    const ParamGroupOptions& spec = groups[g];
    const std::string which = "group " + std::to_string(g) + " " + join(spec.patterns());
    TORCH_CHECK_VALUE(!spec.patterns().empty(), fn, ": ", which, " has no patterns");
    for (const auto& [field, value] :
         {std::pair<const char*, c10::optional<double>>{"lr", spec.lr()},
          {"momentum", spec.momentum()},
          {"weight_decay", spec.weight_decay()}}) {
      TORCH_CHECK_VALUE(!value || *value >= 0, fn, ": ", which, ": ", field, " must be >= 0, got ",
                        *value);
    }
    const auto params = match(model, compile(spec.patterns(), fn));
    TORCH_CHECK_VALUE(!params.is_empty(), fn, ": ", which,
                      " matches no parameter of the model (names look like '",
                      model.named_parameters().is_empty() ? std::string("<none>")
                                                          : model.named_parameters().keys()[0],
                      "')");
    std::vector<at::Tensor> tensors;
    for (const auto& p : params) {
      auto [it, inserted] =
          owner.emplace(p.value().unsafeGetTensorImpl(), std::make_pair(g, p.key()));
      TORCH_CHECK_VALUE(inserted, fn, ": parameter '", p.key(), "' is matched by group ",
                        it->second.first, " and by ", which,
                        "; patterns must select disjoint parameters");
      tensors.push_back(p.value());
    }
    auto options = std::make_unique<O>(defaults);
    if (spec.lr()) options->lr(*spec.lr());
    if (spec.weight_decay()) options->weight_decay(*spec.weight_decay());
    if (spec.momentum()) {
      if constexpr (HasMomentum<O>::value) {
        options->momentum(*spec.momentum());
      } else {
        TORCH_CHECK_VALUE(false, fn, ": ", which, ": ", optimizer,
                          " has no momentum (for Adam / AdamW set betas in the defaults)");
      }
    }
    out.emplace_back(std::move(tensors), std::move(options));
  }
  return out;
}

}  // namespace

torch::OrderedDict<std::string, at::Tensor> match_parameters(
    const torch::nn::Module& model, const std::vector<std::string>& patterns) {
  return match(model, compile(patterns, "torchquant::optim::match_parameters"));
}

std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::SGDOptions& defaults) {
  return make_groups(model, groups, defaults, "SGD");
}

std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdamOptions& defaults) {
  return make_groups(model, groups, defaults, "Adam");
}

std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdamWOptions& defaults) {
  return make_groups(model, groups, defaults, "AdamW");
}

std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::RMSpropOptions& defaults) {
  return make_groups(model, groups, defaults, "RMSprop");
}

std::vector<torch::optim::OptimizerParamGroup> group_parameters(
    const torch::nn::Module& model, const std::vector<ParamGroupOptions>& groups,
    const torch::optim::AdagradOptions& defaults) {
  return make_groups(model, groups, defaults, "Adagrad");
}

std::vector<std::string> freeze_parameters(torch::nn::Module& model,
                                           const std::vector<std::string>& patterns) {
  std::vector<std::string> names;
  for (auto& p : match(model, compile(patterns, "torchquant::optim::freeze_parameters"))) {
    p.value().set_requires_grad(false);
    names.push_back(p.key());
  }
  return names;
}

std::vector<std::string> quant_weight_inplace(torch::nn::Module& model) {
  std::vector<std::string> changed;
  at::NoGradGuard no_grad;
  model.apply([&](const std::string& name, torch::nn::Module& m) {
    const auto children = m.named_children();
    const auto* child = children.find("_weight_quantizer");
    if (child == nullptr) return;
    auto quantizer = std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(*child);
    if (!quantizer) return;
    const auto params = m.named_parameters(/*recurse=*/false);
    const auto* weight = params.find("weight");
    if (weight == nullptr) {
      TORCH_WARN("torchquant::optim::quant_weight_inplace: '", name,
                 "' has a _weight_quantizer but no 'weight' parameter; skipped");
      return;
    }
    if (!quantizer->fake_quant()) {
      TORCH_WARN("torchquant::optim::quant_weight_inplace: '", name,
                 "' uses real quantization: its weight becomes integers (inference only)");
    }
    at::Tensor w = *weight;
    w.copy_(quantizer->forward(w));
    changed.push_back(name);
  });
  return changed;
}

}  // namespace optim
}  // namespace torchquant
