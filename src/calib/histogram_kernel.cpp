#include "calib/histogram_kernel.h"

#include <ATen/Parallel.h>
#include <c10/macros/Macros.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

namespace torchquant {
namespace calib {
namespace detail {
namespace {

constexpr int64_t kGrain = 1 << 16;
// Above this many bins, accumulate_histogram counts without per-thread private copies.
constexpr int64_t kPrivateBinsLimit = 1 << 16;
constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kMaxFiniteBits = 0x7f7fffffu;  // FLT_MAX

// |x| compares like its bit pattern as an unsigned integer (Inf and NaN above every finite
// value), so max |x| and "all finite" are one integer max reduction, which vectorises.
uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u & kAbsMask;
}

AbsMax from_bits(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return {v, bits <= kMaxFiniteBits};
}

__attribute__((target_clones("avx2", "default"))) uint32_t abs_max_bits(const float* data,
                                                                        int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = bits_of(data[i]);
    m = m < b ? b : m;
  }
  return m;
}

// at::histc's float32 bin rule for |x| <= top: int((|x| * num_bins) / top), |x| == top in the last
// bin. The clamp keeps the cast defined where the rule overflows (a top near FLT_MAX: the product
// is inf) and for NaN (never counted); an element that overflows lands in the last bin.
C10_ALWAYS_INLINE int32_t exact_bin(float a, float top, float bins_f, int32_t num_bins) {
  float q = (std::min(a, top) * bins_f) / top;
  q = q < bins_f ? q : bins_f;
  const auto pos = static_cast<int32_t>(q);
  return pos == num_bins ? num_bins - 1 : pos;
}

// The bin rule without its division (a vector division issues once per 5 or more cycles, more than
// the rest of this loop's arithmetic together):
// q' = (|x| * num_bins) * (1 / top) is within num_bins * 2^-22 of the rule's quotient q (both
// roundings of the same product, each off by at most 2^-24 relative, plus 1 / top's rounding), so
// int(q') == int(q) whenever q' is further than `margin` = num_bins * 2^-20 from an integer. The
// few elements closer than that (about 2 * margin of them) are marked and recomputed with
// exact_bin. With an unusable reciprocal (top or 1 / top subnormal or inf) or a margin too wide,
// every element is marked.
struct BinRule {
  float top, bins_f, inv_top, margin;
  int32_t num_bins;
  BinRule(float top_, int64_t bins) : top(top_), bins_f(static_cast<float>(bins)) {
    num_bins = static_cast<int32_t>(bins);
    inv_top = 1.0f / top;
    margin = bins_f * (1.0f / (1 << 20));
    if (!std::isnormal(inv_top) || !std::isnormal(top) || margin >= 0.25f) margin = 2.0f;
  }
  // Out of line so that the compiler keeps the rare recheck a branch instead of computing the
  // division for every element and selecting (that made the pass four times slower).
  C10_NOINLINE int32_t exact(float v) const {
    return exact_bin(std::fabs(v), top, bins_f, num_bins);
  }
  /// The bin of element `i` of a block from its fast index.
  int32_t resolve(int32_t fast, const float* data, int64_t i) const {
    return C10_UNLIKELY(fast < 0) ? exact(data[i]) : fast;
  }
};

// Fast bin index of each element of a block (`num_bins` for elements not counted, the sign bit
// set where exact_bin must decide) and the block's max |x| bits, in one vectorisable loop.
__attribute__((target_clones("avx2", "default"))) uint32_t bin_indices(const float* data, int64_t n,
                                                                       const BinRule& rule,
                                                                       bool skip_zeros,
                                                                       int32_t* out) {
  const float top = rule.top, bins_f = rule.bins_f, inv_top = rule.inv_top;
  const float low = rule.margin, high = 1.0f - rule.margin;
  const int32_t num_bins = rule.num_bins;
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = bits_of(data[i]);
    m = m < b ? b : m;
    const float a = std::fabs(data[i]);
    const bool counted = (a <= top) & !(skip_zeros & (a == 0.f));
    float q = (std::min(a, top) * bins_f) * inv_top;
    q = q < bins_f ? q : bins_f;
    const auto pos = static_cast<int32_t>(q);
    const float frac = q - static_cast<float>(pos);
    // Selects written as integer masks: with `? :` GCC moved the float-to-int conversion under a
    // branch (it may trap, so it is not if-converted) and the loop stayed scalar, four times
    // slower.
    const auto unsure = (static_cast<uint32_t>(frac < low) & static_cast<uint32_t>(pos != 0)) |
                        static_cast<uint32_t>(frac > high);
    const uint32_t code = static_cast<uint32_t>(pos) | (unsure << 31);
    const uint32_t keep = 0u - static_cast<uint32_t>(counted);
    out[i] = static_cast<int32_t>((code & keep) | (static_cast<uint32_t>(num_bins) & ~keep));
  }
  return m;
}

// One thread's range: int32 counts in kCopies interleaved sub-histograms (num_bins + 1 slots
// each, the last for "not counted"), flushed into the int64 `counts` before they could overflow.
// Element i increments copy i % kCopies: runs of one bin (the zeros after a ReLU: often half the
// elements) would otherwise be a chain of increments of one counter, each waiting for the last
// store. Returns the max |x| bits.
uint32_t histogram_serial(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          int64_t* counts) {
  constexpr int64_t kBlock = 1024;
  constexpr size_t kCopies = 4;
  const auto slots = static_cast<size_t>(rule.num_bins) + 1;
  std::vector<int32_t> sub(kCopies * slots, 0);
  std::vector<int32_t> idx(kBlock);
  uint32_t m = 0;
  int64_t since_flush = 0;
  auto flush = [&] {
    for (size_t b = 0; b < slots; ++b) {
      int64_t sum = 0;
      for (size_t c = 0; c < kCopies; ++c) sum += sub[c * slots + b];
      counts[b] += sum;
    }
    std::fill(sub.begin(), sub.end(), 0);
    since_flush = 0;
  };
  int32_t* s0 = sub.data();
  int32_t* s1 = s0 + slots;
  int32_t* s2 = s1 + slots;
  int32_t* s3 = s2 + slots;
  for (int64_t begin = 0; begin < n; begin += kBlock) {
    const int64_t len = std::min(kBlock, n - begin);
    const float* block = data + begin;
    m = std::max(m, bin_indices(block, len, rule, skip_zeros, idx.data()));
    int64_t i = 0;
    for (; i + 4 <= len; i += 4) {
      ++s0[rule.resolve(idx[i], block, i)];
      ++s1[rule.resolve(idx[i + 1], block, i + 1)];
      ++s2[rule.resolve(idx[i + 2], block, i + 2)];
      ++s3[rule.resolve(idx[i + 3], block, i + 3)];
    }
    for (; i < len; ++i) ++s0[rule.resolve(idx[i], block, i)];
    since_flush += len;
    if (since_flush > (int64_t{1} << 30)) flush();
  }
  flush();
  return m;
}

}  // namespace

AbsMax abs_max_serial(const float* data, int64_t n) { return from_bits(abs_max_bits(data, n)); }

AbsMax abs_max(const float* data, int64_t n) {
  std::mutex mutex;
  uint32_t total = 0;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    const uint32_t part = abs_max_bits(data + begin, end - begin);
    std::lock_guard<std::mutex> lock(mutex);
    total = std::max(total, part);
  });
  return from_bits(total);
}

AbsMax accumulate_histogram(const float* data, int64_t n, float top, int64_t num_bins,
                            bool skip_zeros, int64_t* counts) {
  const BinRule rule(top, num_bins);
  if (num_bins > kPrivateBinsLimit) {
    // A grown histogram (up to 2^24 bins): per-thread private copies would cost 24 bytes a bin
    // each; count serially into one int64 scratch instead.
    std::vector<int64_t> direct(static_cast<size_t>(num_bins) + 1, 0);
    std::vector<int32_t> idx(1024);
    uint32_t m = 0;
    for (int64_t begin = 0; begin < n; begin += 1024) {
      const int64_t len = std::min<int64_t>(1024, n - begin);
      const float* block = data + begin;
      m = std::max(m, bin_indices(block, len, rule, skip_zeros, idx.data()));
      for (int64_t i = 0; i < len; ++i)
        ++direct[static_cast<size_t>(rule.resolve(idx[i], block, i))];
    }
    for (int64_t b = 0; b < num_bins; ++b) counts[b] += direct[static_cast<size_t>(b)];
    return from_bits(m);
  }
  std::mutex mutex;
  uint32_t total = 0;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> local(static_cast<size_t>(num_bins) + 1, 0);
    const uint32_t part =
        histogram_serial(data + begin, end - begin, rule, skip_zeros, local.data());
    std::lock_guard<std::mutex> lock(mutex);
    total = std::max(total, part);
    for (int64_t b = 0; b < num_bins; ++b) counts[b] += local[static_cast<size_t>(b)];
  });
  return from_bits(total);
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
