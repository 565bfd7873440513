#include "torchquant/quant_modules.h"

#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_pooling.h"
#include "torchquant/nn/modules/quant_rnn.h"

namespace torchquant {
namespace quant_modules {
namespace {

using torch::nn::AnyModule;
using torch::nn::Module;

std::mutex& factories_mutex() {
  static std::mutex m;
  return m;
}

std::vector<QuantFactory>& user_factories() {
  static std::vector<QuantFactory> f;
  return f;
}

// The quant twin of `m` if it is a QuantImpl::FloatImpl.
template <typename QuantImpl>
c10::optional<AnyModule> twin_if(const std::shared_ptr<Module>& m,
                                 const nn::QuantLayerOptions& quant) {
  auto float_layer = std::dynamic_pointer_cast<typename QuantImpl::FloatImpl>(m);
  if (!float_layer) return c10::nullopt;
  return AnyModule(torch::nn::ModuleHolder<QuantImpl>(QuantImpl::from_float(float_layer, quant)));
}

template <typename... QuantImpls>
c10::optional<AnyModule> first_twin(const std::shared_ptr<Module>& m,
                                    const nn::QuantLayerOptions& quant) {
  c10::optional<AnyModule> result;
  ((result = result ? result : twin_if<QuantImpls>(m, quant)), ...);
  return result;
}

c10::optional<AnyModule> builtin_twin(const std::shared_ptr<Module>& m,
                                      const nn::QuantLayerOptions& quant) {
  using namespace torchquant::nn;  // NOLINT(build/namespaces): a list of layer types
  return first_twin<QuantConv1dImpl, QuantConv2dImpl, QuantConv3dImpl, QuantConvTranspose1dImpl,
                    QuantConvTranspose2dImpl, QuantConvTranspose3dImpl, QuantLinearImpl,
                    QuantMaxPool1dImpl, QuantMaxPool2dImpl, QuantMaxPool3dImpl, QuantAvgPool1dImpl,
                    QuantAvgPool2dImpl, QuantAvgPool3dImpl, QuantAdaptiveAvgPool1dImpl,
                    QuantAdaptiveAvgPool2dImpl, QuantAdaptiveAvgPool3dImpl, QuantInstanceNorm1dImpl,
                    QuantInstanceNorm2dImpl, QuantInstanceNorm3dImpl, QuantLSTMImpl,
                    QuantLSTMCellImpl>(m, quant);
}

// "torch::nn::Conv2dImpl" -> "Conv2d", "ns::NetImpl<ns::Float>" -> "NetImpl<Float>".
std::string short_name(const Module& m) {
  static const std::regex qualifier(R"([A-Za-z_0-9() ]+::)");
  std::string name = std::regex_replace(m.name(), qualifier, "");
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) {
    name.resize(name.size() - 4);
  }
  return name;
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

class Replacer {
 public:
  explicit Replacer(const ReplaceOptions& options) : options_(options) {
    for (const auto& p : options.ignore_patterns()) patterns_.emplace_back(p);
  }

  void visit(const std::shared_ptr<Module>& module, const std::string& prefix) {
    const bool container = rebuild_container(*module, prefix);
    for (const auto& child : module->named_children()) {
      const std::string name = join(prefix, child.key());
      if (container) {
        if (!skip_.count(child.value().get())) visit(child.value(), name);
        continue;
      }
      if (ignored(name, *child.value())) {
        report.ignored.push_back(name);
        continue;
      }
      if (make_quant_twin(child.value(), options_.quant())) {
        report.unreachable.push_back(name + " (" + short_name(*child.value()) + ", a member of " +
                                     short_name(*module) + ")");
        continue;
      }
      visit(child.value(), name);
    }
  }

  ReplaceReport report;

 private:
  bool ignored(const std::string& name, const Module& m) const {
    for (const auto& n : options_.ignore_names()) {
      if (n == name) return true;
    }
    for (const auto& re : patterns_) {
      if (std::regex_search(name, re)) return true;
    }
    return options_.ignore_if() && options_.ignore_if()(name, m);
  }

  // The quant twin of a container element, or nullopt (recording ignored / swapped).
  c10::optional<AnyModule> replacement(const std::string& name,
                                       const std::shared_ptr<Module>& element) {
    if (ignored(name, *element)) {
      report.ignored.push_back(name);
      skip_.insert(element.get());  // do not descend into an ignored element either
      return c10::nullopt;
    }
    auto twin = make_quant_twin(element, options_.quant());
    if (twin) {
      report.swapped.push_back(name + " (" + short_name(*element) + " -> " +
                               short_name(*twin->ptr()) + ")");
      skip_.insert(twin->ptr().get());
    }
    return twin;
  }

  // Rebuilds a Sequential / ModuleList / ModuleDict in place; false for other modules.
  bool rebuild_container(Module& module, const std::string& prefix) {
    if (auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(&module)) {
      auto fresh = std::make_shared<torch::nn::SequentialImpl>();
      const auto names = seq->named_children();
      size_t i = 0;
      for (const AnyModule& element : *seq) {
        const std::string& key = names[i++].key();
        auto twin = replacement(join(prefix, key), element.ptr());
        fresh->push_back(key, twin ? *twin : element);
      }
      *seq = *fresh;
      return true;
    }
    if (auto* list = dynamic_cast<torch::nn::ModuleListImpl*>(&module)) {
      auto fresh = std::make_shared<torch::nn::ModuleListImpl>();
      size_t i = 0;
      for (const auto& element : *list) {
        auto twin = replacement(join(prefix, std::to_string(i++)), element);
        fresh->push_back(twin ? twin->ptr() : element);
      }
      *list = *fresh;
      return true;
    }
    if (auto* dict = dynamic_cast<torch::nn::ModuleDictImpl*>(&module)) {
      std::vector<std::pair<std::string, std::shared_ptr<Module>>> elements;
      for (const auto& item : dict->items()) {
        auto twin = replacement(join(prefix, item.first), item.second);
        elements.emplace_back(item.first, twin ? twin->ptr() : item.second);
      }
      *dict = torch::nn::ModuleDictImpl(elements);
      return true;
    }
    return false;
  }

  const ReplaceOptions& options_;
  std::vector<std::regex> patterns_;
  std::set<const Module*> skip_;
};

void append_section(std::ostringstream& out, const char* title,
                    const std::vector<std::string>& names) {
  out << title << " (" << names.size() << ")\n";
  for (const auto& n : names) out << "  " << n << "\n";
}

}  // namespace

std::string ReplaceReport::str() const {
  std::ostringstream out;
  append_section(out, "swapped", swapped);
  append_section(out, "ignored", ignored);
  append_section(out, "unreachable (typed members of user modules; use quant types there)",
                 unreachable);
  return out.str();
}

void register_quant_factory(QuantFactory factory) {
  TORCH_CHECK_VALUE(factory != nullptr, "register_quant_factory: got an empty factory");
  std::lock_guard<std::mutex> lock(factories_mutex());
  user_factories().push_back(std::move(factory));
}

void clear_quant_factories() {
  std::lock_guard<std::mutex> lock(factories_mutex());
  user_factories().clear();
}

c10::optional<AnyModule> make_quant_twin(const std::shared_ptr<Module>& module,
                                         const nn::QuantLayerOptions& quant) {
  std::vector<QuantFactory> factories;
  {
    std::lock_guard<std::mutex> lock(factories_mutex());
    factories = user_factories();
  }
  for (const auto& factory : factories) {
    if (auto twin = factory(module, quant)) return twin;
  }
  return builtin_twin(module, quant);
}

ReplaceReport replace_with_quant_layers(Module& model, const ReplaceOptions& options) {
  Replacer replacer(options);
  // A non-owning shared_ptr: the walk never keeps `model` itself.
  replacer.visit(std::shared_ptr<Module>(&model, [](Module*) {}), "");
  return replacer.report;
}

}  // namespace quant_modules
}  // namespace torchquant
