#pragma once
// Argument checks of torchquant::_abs_histogram, shared by its CPU and CUDA kernels.

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace torchquant {
namespace detail {

inline void check_abs_histogram_args(const at::Tensor& x, double top, int64_t num_bins) {
  TORCH_CHECK_TYPE(x.is_floating_point(), "torchquant::_abs_histogram: expected a floating-point ",
                   "tensor, got ", x.scalar_type());
  // Counting is in float32: top must stay a positive finite float32.
  const auto top_f = static_cast<float>(top);
  TORCH_CHECK_VALUE(top_f > 0 && std::isfinite(top_f),
                    "torchquant::_abs_histogram: top must be positive and finite in float32, got ",
                    top);
  TORCH_CHECK_VALUE(num_bins > 0 && num_bins < (int64_t{1} << 24),
                    "torchquant::_abs_histogram: num_bins must be in [1, 2^24), got ", num_bins);
}

}  // namespace detail
}  // namespace torchquant
