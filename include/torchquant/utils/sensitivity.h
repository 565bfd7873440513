#pragma once
/// \file
/// Per-layer sensitivity analysis: how much a metric moves when one layer's quantizers are
/// switched off (or on alone), to leave the most sensitive layers in float.
///
/// Example:
/// \code
///   auto results = torchquant::utils::sensitivity_analysis(*model, [&] { return accuracy(); });
///   std::cout << torchquant::utils::sensitivity_table(results);
///   torchquant::utils::leave_unquantized(*model, results, /*n=*/2);
/// \endcode

#include <torch/nn/module.h>

#include <functional>
#include <string>
#include <vector>

namespace torchquant {
namespace utils {

enum class SensitivityMode {
  kDisableOne,   ///< everything quantized except one layer (how much is gained without it)
  kQuantizeOne,  ///< nothing quantized except one layer (how much that layer alone costs)
};

struct SensitivityOptions {
  TORCH_ARG(SensitivityMode, mode) = SensitivityMode::kDisableOne;
  /// Whether a larger metric is better (accuracy) or worse (loss).
  TORCH_ARG(bool, higher_is_better) = true;
};

/// One layer's result. `layer` is the dotted name of the module owning the quantizers
/// (`layer1.0.conv1`); `sensitivity` is how much quantizing that layer hurts the metric, in the
/// metric's units (positive = worse), relative to the run without it.
struct SensitivityResult {
  std::string layer;
  double metric = 0;
  double sensitivity = 0;
};

/// Runs `evaluate` once for the baseline and once per layer; restores every quantizer's state
/// afterwards (also when evaluate throws). Sorted by decreasing sensitivity.
std::vector<SensitivityResult> sensitivity_analysis(torch::nn::Module& model,
                                                    const std::function<double()>& evaluate,
                                                    const SensitivityOptions& options = {});

/// A readable table (rank, layer, metric, sensitivity).
std::string sensitivity_table(const std::vector<SensitivityResult>& results);
/// CSV with a header line: rank,layer,metric,sensitivity.
std::string sensitivity_csv(const std::vector<SensitivityResult>& results);
/// A JSON array of {layer, metric, sensitivity}.
std::string sensitivity_json(const std::vector<SensitivityResult>& results);

/// Disables the quantizers of the `n` most sensitive layers; returns their names.
std::vector<std::string> leave_unquantized(torch::nn::Module& model,
                                           const std::vector<SensitivityResult>& results,
                                           int64_t n);

}  // namespace utils
}  // namespace torchquant
