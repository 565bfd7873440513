#include "torchquant/utils/sensitivity.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "torchquant/utils/quantizers.h"
#include "util/py_format.h"

namespace torchquant {
namespace utils {
namespace {

// "layer1.0.conv1._input_quantizer" -> "layer1.0.conv1"; LSTM lists
// ("lstm._input_quantizers.0") -> "lstm".
std::string owner_of(const std::string& quantizer_name) {
  std::string name = quantizer_name;
  for (int i = 0; i < 2; ++i) {
    const size_t dot = name.rfind('.');
    const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
    const bool quantizer_part =
        last.rfind("_", 0) == 0 || std::all_of(last.begin(), last.end(), ::isdigit);
    if (!quantizer_part) break;
    name = dot == std::string::npos ? "" : name.substr(0, dot);
  }
  return name;
}

struct Layer {
  std::string name;
  std::vector<std::shared_ptr<nn::TensorQuantizerImpl>> quantizers;
};

std::vector<Layer> layers_of(torch::nn::Module& model) {
  std::vector<Layer> layers;
  std::map<std::string, size_t> index;
  for (const auto& nq : named_quantizers(model)) {
    const std::string owner = owner_of(nq.name);
    auto it = index.find(owner);
    if (it == index.end()) {
      it = index.emplace(owner, layers.size()).first;
      layers.push_back({owner, {}});
    }
    layers[it->second].quantizers.push_back(nq.quantizer);
  }
  return layers;
}

// Restores the enabled flag of every quantizer when destroyed.
class EnabledGuard {
 public:
  explicit EnabledGuard(torch::nn::Module& model) {
    for (const auto& nq : named_quantizers(model))
      saved_.emplace_back(nq.quantizer, nq.quantizer->is_enabled());
  }
  ~EnabledGuard() {
    for (auto& [q, on] : saved_) on ? q->enable() : q->disable();
  }
  EnabledGuard(const EnabledGuard&) = delete;
  EnabledGuard& operator=(const EnabledGuard&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<nn::TensorQuantizerImpl>, bool>> saved_;
};

void set_enabled(const Layer& layer, bool on) {
  for (const auto& q : layer.quantizers) on ? q->enable() : q->disable();
}

}  // namespace

std::vector<SensitivityResult> sensitivity_analysis(torch::nn::Module& model,
                                                    const std::function<double()>& evaluate,
                                                    const SensitivityOptions& options) {
  TORCH_CHECK_VALUE(evaluate != nullptr, "sensitivity_analysis: got an empty evaluate function");
  const std::vector<Layer> layers = layers_of(model);
  TORCH_CHECK_VALUE(!layers.empty(), "sensitivity_analysis: the model has no TensorQuantizer");
  EnabledGuard guard(model);
  const bool disable_one = options.mode() == SensitivityMode::kDisableOne;
  for (const auto& layer : layers) set_enabled(layer, disable_one);
  const double baseline = evaluate();
  const double sign = options.higher_is_better() ? 1.0 : -1.0;
  std::vector<SensitivityResult> results;
  for (const auto& layer : layers) {
    set_enabled(layer, !disable_one);
    const double metric = evaluate();
    set_enabled(layer, disable_one);
    // disable-one: the gain of leaving the layer in float; quantize-one: the loss it causes.
    const double sensitivity =
        disable_one ? sign * (metric - baseline) : sign * (baseline - metric);
    results.push_back({layer.name, metric, sensitivity});
  }
  std::stable_sort(results.begin(), results.end(),
                   [](const auto& a, const auto& b) { return a.sensitivity > b.sensitivity; });
  return results;
}

std::string sensitivity_table(const std::vector<SensitivityResult>& results) {
  size_t width = 5;
  for (const auto& r : results) width = std::max(width, r.layer.size());
  std::ostringstream out;
  out << std::left << "rank  " << std::setw(static_cast<int>(width)) << "layer"
      << "  metric      sensitivity\n";
  for (size_t i = 0; i < results.size(); ++i) {
    out << std::setw(4) << i + 1 << "  " << std::setw(static_cast<int>(width)) << results[i].layer
        << "  " << std::setw(10) << detail::py_fixed(results[i].metric, 6) << "  "
        << detail::py_fixed(results[i].sensitivity, 6) << "\n";
  }
  return out.str();
}

std::string sensitivity_csv(const std::vector<SensitivityResult>& results) {
  std::ostringstream out;
  out << "rank,layer,metric,sensitivity\n";
  for (size_t i = 0; i < results.size(); ++i) {
    out << i + 1 << "," << results[i].layer << "," << detail::py_float_repr(results[i].metric)
        << "," << detail::py_float_repr(results[i].sensitivity) << "\n";
  }
  return out.str();
}

std::string sensitivity_json(const std::vector<SensitivityResult>& results) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : results) {
    rows.push_back({{"layer", r.layer}, {"metric", r.metric}, {"sensitivity", r.sensitivity}});
  }
  return rows.dump(2);
}

std::vector<std::string> leave_unquantized(torch::nn::Module& model,
                                           const std::vector<SensitivityResult>& results,
                                           int64_t n) {
  TORCH_CHECK_VALUE(n >= 0 && n <= static_cast<int64_t>(results.size()),
                    "leave_unquantized: n must be in [0, ", results.size(), "], got ", n);
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) {
    const std::string& layer = results[static_cast<size_t>(i)].layer;
    disable_quantizers(model, QuantizerSelector::predicate(
                                  [&](const std::string& name, const nn::TensorQuantizerImpl&) {
                                    return owner_of(name) == layer;
                                  }));
    names.push_back(layer);
  }
  return names;
}

}  // namespace utils
}  // namespace torchquant
