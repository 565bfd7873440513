#include "calib/abs_max.h"

#include <ATen/Functions.h>

#include <limits>
#include <numeric>
#include <vector>

#include "calib/histogram_kernel.h"

namespace torchquant {
namespace calib {
namespace detail {

at::Tensor abs_max_all(const at::Tensor& x) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && x.numel() > 0) {
    const AbsMax m = abs_max(x.const_data_ptr<float>(), x.numel());
    if (m.finite) return at::scalar_tensor(m.max, at::kFloat);
  }
  return at::linalg_vector_norm(x, std::numeric_limits<double>::infinity());
}

bool reduces_all_but_first(const at::Tensor& x, const std::vector<int64_t>& dims) {
  if (x.dim() < 2 || static_cast<int64_t>(dims.size()) != x.dim() - 1) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] != static_cast<int64_t>(i) + 1) return false;
  }
  return true;
}

at::Tensor abs_max_per_row(const at::Tensor& x) {
  std::vector<int64_t> dims(static_cast<size_t>(x.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && x.numel() > 0 &&
      x.dim() >= 2) {
    const int64_t rows = x.size(0);
    const int64_t cols = x.numel() / rows;
    shape[0] = rows;
    at::Tensor out = at::empty(shape, x.options());
    float* o = out.data_ptr<float>();
    const float* d = x.const_data_ptr<float>();
    bool finite = true;
    for (int64_t r = 0; r < rows; ++r) {  // weights are small: one thread, no task overhead
      const AbsMax m = abs_max_serial(d + r * cols, cols);
      finite = finite && m.finite;
      o[r] = m.max;
    }
    if (finite) return out;
  }
  return at::linalg_vector_norm(x, std::numeric_limits<double>::infinity(), dims,
                                /*keepdim=*/true);
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
