#include "calib/bin_codes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace torchquant {
namespace calib {
namespace detail {

// Every element written, none counted here: plain C++ that vectorises, writing an element to
// recheck as a marked code (sign bit set, the others its |x| bits), then a pass over the codes
// that moves the marked ones to `recheck`. Selects are written as integer masks: with `? :` GCC
// moved the float-to-int conversion under a branch (it may trap, so it is not if-converted) and
// the loop stayed scalar, four times slower.
BinCodes bin_codes_scalar(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          int32_t* out, uint32_t* recheck) {
  constexpr uint32_t kMark = 0x80000000u;
  const float top = rule.top, bins_f = rule.bins_f, inv_top = rule.inv_top, last = rule.last;
  const float low = rule.margin, high = 1.0f - rule.margin;
  const auto num_bins = static_cast<uint32_t>(rule.num_bins);
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = abs_bits(data[i]);
    m = m < b ? b : m;
    const float a = std::fabs(data[i]);
    // Zeros by their bits, as the vector versions, whatever the thread's denormals-are-zero mode.
    const bool counted = (a <= top) & !(skip_zeros & (b == 0));
    float q = (std::min(a, top) * bins_f) * inv_top;
    q = q < last ? q : last;
    const auto pos = static_cast<int32_t>(q);
    const float frac = q - static_cast<float>(pos);
    const uint32_t unsure =
        0u - ((static_cast<uint32_t>(frac < low) & static_cast<uint32_t>(pos != 0)) |
              static_cast<uint32_t>(frac > high));
    const uint32_t code = (static_cast<uint32_t>(pos) & ~unsure) | ((b | kMark) & unsure);
    const uint32_t keep = 0u - static_cast<uint32_t>(counted);
    out[i] = static_cast<int32_t>((code & keep) | (num_bins & ~keep));
  }
  BinCodes r;
  r.size = n;
  r.max_bits = m;
  for (int64_t i = 0; i < n; ++i) {
    if (out[i] < 0) {
      recheck[r.rechecks++] = static_cast<uint32_t>(out[i]) & kAbsMask;
      out[i] = rule.num_bins;
    }
  }
  return r;
}

int32_t exact_bin(float a, float top, float bins_f, int32_t num_bins) {
  float q = (std::min(a, top) * bins_f) / top;
  q = q < bins_f ? q : bins_f;
  const auto pos = static_cast<int32_t>(q);
  return pos == num_bins ? num_bins - 1 : pos;
}

BinRule::BinRule(float top_, int64_t bins) : top(top_), bins_f(static_cast<float>(bins)) {
  num_bins = static_cast<int32_t>(bins);
  inv_top = 1.0f / top;
  margin = bins_f * (1.0f / (1 << 20));
  last = bins_f - 0.5f;  // exact below 2^23 bins; from 2^18 every element is rechecked anyway
  if (!std::isnormal(inv_top) || !std::isnormal(top) || margin >= 0.25f) margin = 2.0f;
}

int32_t BinRule::exact(uint32_t bits) const {
  float a;
  std::memcpy(&a, &bits, sizeof(a));
  return exact_bin(a, top, bins_f, num_bins);
}

BinCodesFn bin_codes_for(torchquant::detail::CpuIsa isa) {
#if defined(__x86_64__)
  return torchquant::detail::pick_version(isa, bin_codes_scalar, bin_codes_avx2, bin_codes_avx512);
#else
  (void)isa;
  return bin_codes_scalar;
#endif
}

CountFn count_for(torchquant::detail::CpuIsa isa) {
#if defined(__x86_64__)
  return isa == torchquant::detail::CpuIsa::kAvx2 ? count_avx2 : nullptr;
#else
  (void)isa;
  return nullptr;
#endif
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
