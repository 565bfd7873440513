#pragma once
// The first-batch bin edges of HistogramCalibrator, bit for bit as pytorch_quantization computed
// them: torch.linspace(0, x_max, bins + 1) of PyTorch 1.13 on an AVX2 CPU. Internal header.

#include <cstdint>
#include <vector>

namespace torchquant {
namespace calib {
namespace detail {

/// `num_bins + 1` float32 edges from 0 to `end`. PyTorch 1.13's CPU linspace fills the first half
/// upwards from 0 and the second half downwards from `end` (step = end / num_bins), in vectors of
/// 8 whose first element is a fused multiply-add and the others base + j * step; today's ATen
/// rounds differently in about a quarter of the edges, so this is reproduced rather than called.
std::vector<float> upstream_linspace(float end, int64_t num_bins);

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
