#include "calib/upstream_linspace.h"

#include <cmath>

namespace torchquant {
namespace calib {
namespace detail {

// fp-contract off: the FMAs are explicit (std::fma); the other products round separately.
#if defined(__clang__)
#define TORCHQUANT_NO_FP_CONTRACT
#else
#define TORCHQUANT_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif
TORCHQUANT_NO_FP_CONTRACT std::vector<float> upstream_linspace(float end, int64_t num_bins) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  constexpr int64_t kVector = 8;  // AVX2 float lanes
  const int64_t steps = num_bins + 1;
  std::vector<float> edges(static_cast<size_t>(steps));
  const float start = 0.f;
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  // The element at `idx` as the scalar loop computes it (also the base of each vector).
  auto fused = [&](int64_t idx) {
    return idx < halfway ? std::fma(step, static_cast<float>(idx), start)
                         : std::fma(-step, static_cast<float>(steps - idx - 1), end);
  };
  // A vector: its first element fused, the others base + j * step rounded separately.
  auto fill_vector = [&](int64_t first) {
    const float base = fused(first);
    for (int64_t j = 0; j < kVector; ++j) {
      const float offset = static_cast<float>(j) * step;
      edges[static_cast<size_t>(first + j)] = base + offset;
    }
  };
  // The vectorised loop takes two vectors per iteration; the rest is the scalar tail.
  int64_t idx = 0;
  for (; idx + 2 * kVector <= steps; idx += 2 * kVector) {
    fill_vector(idx);
    fill_vector(idx + kVector);
  }
  for (; idx < steps; ++idx) edges[static_cast<size_t>(idx)] = fused(idx);
  return edges;
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
