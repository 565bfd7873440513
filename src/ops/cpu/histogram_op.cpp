// CPU kernel of torchquant::_abs_histogram (the calibrators' histogram op).

#include <ATen/ATen.h>
#include <torch/library.h>

#include "calib/histogram_kernel.h"
#include "ops/histogram_checks.h"

namespace torchquant {
namespace detail {
namespace {

at::Tensor abs_histogram_cpu(const at::Tensor& x, double top, int64_t num_bins, bool skip_zeros) {
  check_abs_histogram_args(x, top, num_bins);
  const at::Tensor data = x.to(at::kFloat).contiguous();
  at::Tensor counts = at::zeros({num_bins}, x.options().dtype(at::kLong));
  calib::detail::accumulate_histogram(data.data_ptr<float>(), data.numel(), static_cast<float>(top),
                                      num_bins, skip_zeros, counts.data_ptr<int64_t>());
  return counts;
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CPU, m) {
  m.impl("_abs_histogram", &torchquant::detail::abs_histogram_cpu);
}
