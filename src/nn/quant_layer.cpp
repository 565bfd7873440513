#include "torchquant/nn/modules/quant_layer.h"

#include <atomic>

namespace torchquant {
namespace nn {
namespace quant_modules {
namespace {
std::atomic<bool> g_active{true};
}  // namespace

void initialize() { g_active = true; }
void deactivate() { g_active = false; }
bool is_active() { return g_active; }

}  // namespace quant_modules
}  // namespace nn
}  // namespace torchquant

#include <torch/nn/module.h>

#include <sstream>

#include "torchquant/nn/modules/quant_layer_base.h"

namespace torchquant {
namespace nn {
namespace detail {

std::string renamed_print(const torch::nn::Module& twin, const std::string& name) {
  std::ostringstream stream;
  twin.pretty_print(stream);
  std::string text = stream.str();
  const size_t paren = text.find('(');
  return name + (paren == std::string::npos ? std::string() : text.substr(paren));
}

bool rebind(torch::nn::Module& owner, const std::string& name,
            const std::shared_ptr<torch::nn::Module>& quantizer, const std::string& member_name,
            TensorQuantizer* member) {
  if (name != member_name) return false;
  auto typed = std::dynamic_pointer_cast<TensorQuantizerImpl>(quantizer);
  TORCH_CHECK_TYPE(typed != nullptr, "rebind_quantizer: ", name, " must be a TensorQuantizer, got ",
                   quantizer ? quantizer->name() : "null");
  owner.replace_module(name, typed);
  *member = TensorQuantizer(typed);
  return true;
}

}  // namespace detail
}  // namespace nn
}  // namespace torchquant
