#include "torchquant/calib/calibrate_weights.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "calib/amax_search.h"
#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace calib {
namespace {

struct NumpyHistogram {
  std::vector<int64_t> counts;
  std::vector<float> edges;
};

// np.histogram(x, bins, range=(0, x.max())) of float32 values: float32 edges from a float64
// linspace (last edge = max), bin = int((x - 0) * (bins / max)) in float64, then numpy's
// correction against the float32 edges.
NumpyHistogram numpy_histogram(const float* x, int64_t n, int64_t bins) {
  float top = 0.f;
  for (int64_t i = 0; i < n; ++i) top = std::max(top, x[i]);
  NumpyHistogram h;
  h.counts.assign(static_cast<size_t>(bins), 0);
  h.edges.resize(static_cast<size_t>(bins) + 1);
  const double step = static_cast<double>(top) / static_cast<double>(bins);
  for (int64_t i = 0; i < bins; ++i) {
    h.edges[static_cast<size_t>(i)] = static_cast<float>(static_cast<double>(i) * step);
  }
  h.edges.back() = top;
  if (top == 0.f) {  // numpy widens a zero range to [-0.5, 0.5]; every |w| is 0: first bin
    h.counts[0] = n;
    return h;
  }
  const double norm = static_cast<double>(bins) / static_cast<double>(top);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    auto idx = static_cast<int64_t>(static_cast<double>(v) * norm);
    if (idx == bins) idx = bins - 1;
    if (v < h.edges[static_cast<size_t>(idx)]) --idx;
    if (idx != bins - 1 && v >= h.edges[static_cast<size_t>(idx) + 1]) ++idx;
    ++h.counts[static_cast<size_t>(idx)];
  }
  return h;
}

float amax_of(const at::Tensor& magnitudes, const std::string& method, double percentile,
              int64_t num_bins, const NumBits& bits, bool is_unsigned) {
  const at::Tensor m = magnitudes.contiguous();
  if (method == "max") return m.max().item<float>();
  const NumpyHistogram h = numpy_histogram(m.data_ptr<float>(), m.numel(), num_bins);
  if (method == "percentile") return detail::percentile_amax(h.counts, h.edges, percentile);
  return detail::mse_amax(h.counts, h.edges, bits.bits(), is_unsigned);
}

void calibrate_one(nn::TensorQuantizerImpl& quantizer, const at::Tensor& weight,
                   const std::string& method, bool perchannel, double percentile,
                   int64_t num_bins) {
  at::Tensor w = weight.detach().abs().to(at::kCPU, at::kFloat);
  const auto& axis = quantizer.axis();
  if (!perchannel || !axis || axis->empty()) {
    quantizer.set_amax(at::scalar_tensor(amax_of(w.reshape(-1), method, percentile, num_bins,
                                                 quantizer.num_bits(), quantizer.is_unsigned()),
                                         at::kFloat));
    return;
  }
  TORCH_CHECK_VALUE(axis->size() == 1, "calibrate_weights: per-channel calibration needs one ",
                    "axis, the weight quantizer has ", axis->size());
  const int64_t a = (*axis)[0] < 0 ? (*axis)[0] + w.dim() : (*axis)[0];
  TORCH_CHECK_INDEX(a >= 0 && a < w.dim(), "calibrate_weights: axis ", (*axis)[0],
                    " is out of range for a weight of shape ", w.sizes());
  const at::Tensor rows = w.movedim(a, 0).reshape({w.size(a), -1});
  std::vector<float> amax;
  for (int64_t c = 0; c < rows.size(0); ++c) {
    amax.push_back(amax_of(rows[c], method, percentile, num_bins, quantizer.num_bits(),
                           quantizer.is_unsigned()));
  }
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[static_cast<size_t>(a)] = w.size(a);
  quantizer.set_amax(at::tensor(amax).reshape(shape));
}

}  // namespace

int64_t calibrate_weights(torch::nn::Module& model, const std::string& method, bool perchannel,
                          double percentile, int64_t num_bins) {
  TORCH_CHECK_VALUE(method == "max" || method == "percentile" || method == "mse",
                    "calibrate_weights: unknown method \"", method,
                    "\" (expected \"max\", \"percentile\" or \"mse\")");
  TORCH_CHECK_VALUE(percentile >= 0 && percentile <= 100,
                    "calibrate_weights: percentile must be in [0, 100], got ", percentile);
  TORCH_CHECK_VALUE(num_bins > 0, "calibrate_weights: num_bins must be positive, got ", num_bins);
  at::NoGradGuard no_grad;
  int64_t calibrated = 0;
  // The model itself, then every submodule (named_modules(include_self) would need the model to
  // be owned by a shared_ptr).
  std::vector<std::pair<std::string, torch::nn::Module*>> modules = {{"", &model}};
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    modules.emplace_back(item.key(), item.value().get());
  }
  for (const auto& [name, module] : modules) {
    torch::nn::Module& m = *module;
    const auto children = m.named_children();
    const auto params = m.named_parameters(/*recurse=*/false);
    if (!children.contains("_weight_quantizer") || !params.contains("weight")) continue;
    auto* quantizer = dynamic_cast<nn::TensorQuantizerImpl*>(children["_weight_quantizer"].get());
    if (quantizer == nullptr) continue;
    try {
      calibrate_one(*quantizer, params["weight"], method, perchannel, percentile, num_bins);
    } catch (const std::invalid_argument& e) {
      TORCH_CHECK_VALUE(false, "calibrate_weights: ", name, ": ", e.what());
    }
    ++calibrated;
  }
  return calibrated;
}

}  // namespace calib
}  // namespace torchquant
