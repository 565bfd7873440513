#pragma once
// Where a tensor created for a module should live. Internal header.

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include <string>
#include <unordered_map>

namespace torchquant {
namespace utils {
namespace detail {

/// The device of the module named `name` in `modules` (dotted name -> module, the root under ""):
/// that of its own first parameter or defined buffer, else of its nearest enclosing module holding
/// one, else of any tensor of the root module, else the CPU.
c10::Device nearest_device(const std::string& name,
                           const std::unordered_map<std::string, torch::nn::Module*>& modules);

}  // namespace detail
}  // namespace utils
}  // namespace torchquant
