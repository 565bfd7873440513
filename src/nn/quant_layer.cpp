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

}  // namespace detail
}  // namespace nn
}  // namespace torchquant
