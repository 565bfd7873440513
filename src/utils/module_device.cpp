#include "utils/module_device.h"

namespace torchquant {
namespace utils {
namespace detail {
namespace {

c10::optional<c10::Device> device_of(const torch::nn::Module& m, bool recurse) {
  for (const auto& p : m.parameters(recurse)) return p.device();
  for (const auto& b : m.buffers(recurse)) {
    if (b.defined()) return b.device();
  }
  return c10::nullopt;
}

}  // namespace

c10::Device nearest_device(const std::string& name,
                           const std::unordered_map<std::string, torch::nn::Module*>& modules) {
  std::string current = name;
  while (true) {
    auto it = modules.find(current);
    if (it != modules.end()) {
      if (auto d = device_of(*it->second, /*recurse=*/false)) return *d;
    }
    if (current.empty()) break;
    const auto dot = current.rfind('.');
    current = dot == std::string::npos ? std::string() : current.substr(0, dot);
  }
  auto root = modules.find("");
  if (root != modules.end()) {
    if (auto d = device_of(*root->second, /*recurse=*/true)) return *d;
  }
  return c10::Device(c10::kCPU);
}

}  // namespace detail
}  // namespace utils
}  // namespace torchquant
