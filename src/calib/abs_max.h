#pragma once
// max |x| over a whole tensor, fast. Internal header.

#include <ATen/core/Tensor.h>

#include <vector>

namespace torchquant {
namespace calib {
namespace detail {

/// max |x| over every element of `x`, exactly as `at::linalg_vector_norm(x, inf)` returns it (same
/// dtype; NaN when an element is NaN, inf when one is infinite). Contiguous float32 CPU tensors
/// take the calibrators' vectorised parallel kernel (ATen's inf-norm reduction is scalar code,
/// several times slower); everything else goes to ATen.
at::Tensor abs_max_all(const at::Tensor& x);

/// max |x| over every dim but the first, keepdim (shape [C, 1, ..., 1]), exactly as
/// `at::linalg_vector_norm(x, inf, {1, ..., dim - 1}, true)`: a per-output-channel amax of a
/// weight. Same fast path and fallback as abs_max_all.
at::Tensor abs_max_per_row(const at::Tensor& x);

/// True when `dims` (sorted, non-negative) are 1, 2, ..., x.dim() - 1.
bool reduces_all_but_first(const at::Tensor& x, const std::vector<int64_t>& dims);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
