#include "calib/histogram_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <mutex>
#include <vector>

namespace torchquant {
namespace calib {
namespace detail {
namespace {

constexpr int64_t kGrain = 1 << 16;

__attribute__((target_clones("avx2", "default"))) AbsMax abs_max_serial(const float* data,
                                                                        int64_t n) {
  float m = 0.f;
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(data[i]);
    m = m < a ? a : m;
    bad |= !(a <= FLT_MAX);
  }
  return {m, bad == 0};
}

__attribute__((target_clones("avx2", "default"))) void histogram_serial(
    const float* data, int64_t n, float top, float bins_f, int64_t num_bins, bool skip_zeros,
    int64_t* counts) {
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(data[i]);
    if (!(a <= top) || (skip_zeros && a == 0.f)) continue;
    int64_t pos = static_cast<int64_t>((a * bins_f) / top);
    pos = pos == num_bins ? num_bins - 1 : pos;
    ++counts[pos];
  }
}

}  // namespace

AbsMax abs_max(const float* data, int64_t n) {
  std::mutex mutex;
  AbsMax total;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    const AbsMax part = abs_max_serial(data + begin, end - begin);
    std::lock_guard<std::mutex> lock(mutex);
    total.max = std::max(total.max, part.max);
    total.finite = total.finite && part.finite;
  });
  return total;
}

void accumulate_histogram(const float* data, int64_t n, float top, int64_t num_bins,
                          bool skip_zeros, int64_t* counts) {
  const auto bins_f = static_cast<float>(num_bins);
  std::mutex mutex;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> local(static_cast<size_t>(num_bins), 0);
    histogram_serial(data + begin, end - begin, top, bins_f, num_bins, skip_zeros, local.data());
    std::lock_guard<std::mutex> lock(mutex);
    for (int64_t b = 0; b < num_bins; ++b) counts[b] += local[static_cast<size_t>(b)];
  });
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
