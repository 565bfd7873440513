#pragma once
// Shared by the property tests and the ops fuzz target.

#include <c10/core/ScalarType.h>

#include <cmath>

namespace torchquant {
namespace testing {

/// Relative precision of the fake-quant grid and output in `dtype` (float64 outputs are computed
/// with a scale in amax's float32 precision).
inline double grid_eps(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf:
      return std::ldexp(1.0, -10);
    case at::kBFloat16:
      return std::ldexp(1.0, -7);
    default:
      return std::ldexp(1.0, -23);
  }
}

}  // namespace testing
}  // namespace torchquant
