#include "torchquant/utils/share.h"

#include <c10/util/Exception.h>

#include <map>

#include "torchquant/nn/modules/quant_layer.h"
#include "torchquant/utils/quantizers.h"

namespace torchquant {
namespace utils {

void share_quantizer(torch::nn::Module& model, const std::string& source,
                     const std::vector<std::string>& targets) {
  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    modules.emplace(item.key(), item.value());
  }
  auto quantizer = modules.find(source);
  TORCH_CHECK_VALUE(quantizer != modules.end() &&
                        std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(quantizer->second),
                    "share_quantizer: no TensorQuantizer named '", source, "' in the model");
  // Check every target before changing anything.
  std::vector<std::pair<nn::QuantizerOwner*, std::string>> plan;
  for (const auto& target : targets) {
    const size_t dot = target.rfind('.');
    TORCH_CHECK_VALUE(dot != std::string::npos, "share_quantizer: '", target,
                      "' is not a dotted quantizer name like 'layer1.0.add._input0_quantizer'");
    const std::string owner_name = target.substr(0, dot);
    auto owner = modules.find(owner_name);
    TORCH_CHECK_VALUE(owner != modules.end(), "share_quantizer: no module named '", owner_name,
                      "' in the model");
    auto* rebindable = dynamic_cast<nn::QuantizerOwner*>(owner->second.get());
    TORCH_CHECK_TYPE(rebindable != nullptr, "share_quantizer: '", owner_name, "' (",
                     owner->second->name(),
                     ") is not a quant layer, QuantAdd or QuantConcat; its quantizers cannot be "
                     "shared");
    const std::string member = target.substr(dot + 1);
    TORCH_CHECK_VALUE(owner->second->named_children().contains(member), "share_quantizer: '",
                      owner_name, "' has no quantizer named '", member, "'");
    plan.emplace_back(rebindable, member);
  }
  for (const auto& [owner, member] : plan) {
    owner->rebind_quantizer(member, quantizer->second);
  }
}

}  // namespace utils
}  // namespace torchquant
