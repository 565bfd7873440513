#include "torchquant/utils/quantizers.h"

#include <algorithm>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>

#include "util/py_format.h"

namespace torchquant {
namespace utils {
namespace {

using Predicate = std::function<bool(const std::string&, const nn::TensorQuantizerImpl&)>;

std::regex glob_to_regex(const std::string& glob) {
  std::string re = "^";
  for (char c : glob) {
    if (c == '*') {
      re += ".*";
    } else if (c == '?') {
      re += ".";
    } else if (std::string("\\^$.|+()[]{}").find(c) != std::string::npos) {
      re += std::string("\\") + c;
    } else {
      re += c;
    }
  }
  return std::regex(re + "$");
}

std::regex checked_regex(const std::string& pattern, const char* where) {
  try {
    return std::regex(pattern);
  } catch (const std::regex_error& e) {
    TORCH_CHECK_VALUE(false, where, ": invalid regex \"", pattern, "\": ", e.what());
  }
  return std::regex();  // unreachable
}

template <typename Action>
int64_t apply(torch::nn::Module& model, const QuantizerSelector& selector, Action action) {
  int64_t changed = 0;
  for (const auto& q : select_quantizers(model, selector)) changed += action(*q.quantizer) ? 1 : 0;
  return changed;
}

std::string amax_text(const nn::TensorQuantizerImpl& q) {
  if (!q.has_amax()) return "dynamic";
  const at::Tensor amax = q.amax().detach().to(at::kCPU, at::kDouble);
  if (amax.numel() == 1) return detail::py_fixed(amax.item<double>(), 4);
  return "[" + detail::py_fixed(amax.min().item<double>(), 4) + ", " +
         detail::py_fixed(amax.max().item<double>(), 4) + "](" + std::to_string(amax.numel()) + ")";
}

std::string state_text(const nn::TensorQuantizerImpl& q) {
  if (!q.is_enabled()) return "disabled";
  std::vector<std::string> stages;
  if (q.quant_enabled()) stages.emplace_back("quant");
  if (q.calib_enabled()) stages.emplace_back("calib");
  if (q.clip_enabled()) stages.emplace_back("clip");
  if (stages.empty()) return "pass-through";
  std::string s = stages.front();
  for (size_t i = 1; i < stages.size(); ++i) s += "+" + stages[i];
  return s;
}

}  // namespace

std::vector<NamedQuantizer> named_quantizers(torch::nn::Module& model) {
  std::vector<NamedQuantizer> out;
  std::set<const nn::TensorQuantizerImpl*> seen;
  auto add = [&](const std::string& name, const std::shared_ptr<torch::nn::Module>& m) {
    auto q = std::dynamic_pointer_cast<nn::TensorQuantizerImpl>(m);
    if (q && seen.insert(q.get()).second) out.push_back({name, q});
  };
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    add(item.key(), item.value());
  }
  return out;
}

QuantizerSelector QuantizerSelector::all() {
  QuantizerSelector s;
  s.fn_ = [](const std::string&, const nn::TensorQuantizerImpl&) { return true; };
  return s;
}

QuantizerSelector QuantizerSelector::names(std::vector<std::string> names) {
  QuantizerSelector s;
  s.fn_ = [names = std::move(names)](const std::string& name, const nn::TensorQuantizerImpl&) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  return s;
}

QuantizerSelector QuantizerSelector::glob(const std::string& pattern) {
  QuantizerSelector s;
  s.fn_ = [re = glob_to_regex(pattern)](const std::string& name, const nn::TensorQuantizerImpl&) {
    return std::regex_match(name, re);
  };
  return s;
}

QuantizerSelector QuantizerSelector::regex(const std::string& pattern) {
  QuantizerSelector s;
  s.fn_ = [re = checked_regex(pattern, "QuantizerSelector::regex")](
              const std::string& name, const nn::TensorQuantizerImpl&) {
    return std::regex_search(name, re);
  };
  return s;
}

QuantizerSelector QuantizerSelector::predicate(Predicate fn) {
  TORCH_CHECK_VALUE(fn != nullptr, "QuantizerSelector::predicate: got an empty function");
  QuantizerSelector s;
  s.fn_ = std::move(fn);
  return s;
}

QuantizerSelector QuantizerSelector::under(const std::string& prefix) {
  QuantizerSelector s;
  s.fn_ = [prefix](const std::string& name, const nn::TensorQuantizerImpl&) {
    return prefix.empty() || (name.compare(0, prefix.size(), prefix) == 0 &&
                              (name.size() == prefix.size() || name[prefix.size()] == '.'));
  };
  return s;
}

bool QuantizerSelector::matches(const std::string& name,
                                const nn::TensorQuantizerImpl& quantizer) const {
  return fn_(name, quantizer);
}

std::vector<NamedQuantizer> select_quantizers(torch::nn::Module& model,
                                              const QuantizerSelector& selector) {
  std::vector<NamedQuantizer> out;
  for (auto& q : named_quantizers(model)) {
    if (selector.matches(q.name, *q.quantizer)) out.push_back(std::move(q));
  }
  return out;
}

int64_t enable_quantization(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    q.enable_quant();
    return true;
  });
}

int64_t disable_quantization(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    q.disable_quant();
    return true;
  });
}

int64_t enable_calibration(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    if (!q.calibrator()) return false;
    q.enable_calib();
    return true;
  });
}

int64_t disable_calibration(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    q.disable_calib();
    return true;
  });
}

int64_t enable_quantizers(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    q.enable();
    return true;
  });
}

int64_t disable_quantizers(torch::nn::Module& model, const QuantizerSelector& selector) {
  return apply(model, selector, [](nn::TensorQuantizerImpl& q) {
    q.disable();
    return true;
  });
}

int64_t set_quantizer_attributes(torch::nn::Module& model, const QuantizerSelector& selector,
                                 const QuantizerAttributes& a) {
  return apply(model, selector, [&](nn::TensorQuantizerImpl& q) {
    if (a.axis()) q.set_axis(*a.axis());
    if (a.num_bits()) q.set_num_bits(*a.num_bits());
    if (a.is_unsigned()) q.set_unsigned(*a.is_unsigned());
    if (a.narrow_range()) q.set_narrow_range(*a.narrow_range());
    return true;
  });
}

std::vector<QuantizerInfo> quantizer_summary(torch::nn::Module& model) {
  std::vector<QuantizerInfo> rows;
  for (const auto& nq : named_quantizers(model)) {
    const auto& q = *nq.quantizer;
    QuantizerInfo info;
    info.name = nq.name;
    info.bits = (q.is_unsigned() ? "unsigned " : "") + q.num_bits().str();
    info.axis = q.axis() ? detail::py_tuple_repr(*q.axis()) : "per-tensor";
    info.amax = amax_text(q);
    info.calibrator = q.calibrator() ? q.calibrator()->name() : "-";
    info.state = state_text(q);
    rows.push_back(std::move(info));
  }
  return rows;
}

void print_quantizer_summary(torch::nn::Module& model, std::ostream& stream) {
  const auto rows = quantizer_summary(model);
  size_t width = 4;
  for (const auto& r : rows) width = std::max(width, r.name.size());
  stream << std::left << std::setw(static_cast<int>(width)) << "name"
         << "  bits        axis        amax                      calibrator           state\n";
  for (const auto& r : rows) {
    stream << std::setw(static_cast<int>(width)) << r.name << "  " << std::setw(10) << r.bits
           << "  " << std::setw(10) << r.axis << "  " << std::setw(24) << r.amax << "  "
           << std::setw(19) << r.calibrator << "  " << r.state << "\n";
  }
  stream << rows.size() << " quantizers\n" << std::right;
}

std::string quantizer_summary_json(torch::nn::Module& model) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : quantizer_summary(model)) {
    rows.push_back({{"name", r.name},
                    {"bits", r.bits},
                    {"axis", r.axis},
                    {"amax", r.amax},
                    {"calibrator", r.calibrator},
                    {"state", r.state}});
  }
  return rows.dump(2);
}

}  // namespace utils
}  // namespace torchquant
