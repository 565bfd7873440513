// fake_affine_tensor_quant's loop in AVX2 intrinsics; see affine_avx2.h.

#include "ops/cpu/affine_avx2.h"

#include <c10/util/Exception.h>

#include "util/cpu_isa.h"

#if defined(__x86_64__)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/cpu/avx2_io.h"
#include "util/x86_target.h"

namespace torchquant {
namespace detail {
namespace {

struct Lanes {
  __m256 step, zero, lo, hi, min_range, max_range;
};

TORCHQUANT_TARGET_AVX2_F16C Lanes lanes_of(const AffineScalars<float>& s) {
  return {_mm256_set1_ps(s.step), _mm256_set1_ps(s.zero),      _mm256_set1_ps(s.lo),
          _mm256_set1_ps(s.hi),   _mm256_set1_ps(s.min_range), _mm256_set1_ps(s.max_range)};
}

// affine_loop's element (affine_kernel.cpp) on 8 lanes: nearbyint is vroundps to nearest; max(lo,
// t) and min(hi, t) return t when t is NaN, as clamp_keep_nan. The output as floats, still to be
// stored as T, and min_range <= x <= max_range, lane k at bit k. kRoundDiff / kRoundSum: whether
// r - zero / q + zero need rounding to T (see run).
template <typename T, bool kRoundDiff, bool kRoundSum>
TORCHQUANT_TARGET_AVX2_F16C __m256 affine_step(const Lanes& c, __m256 x, uint32_t& bits) {
  const __m256 r = _mm256_round_ps(Io<T>::in_dtype(_mm256_div_ps(x, c.step)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 q = _mm256_sub_ps(r, c.zero);
  if constexpr (kRoundDiff) q = Io<T>::in_dtype(q);
  q = _mm256_min_ps(c.hi, _mm256_max_ps(c.lo, q));
  const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(x, c.min_range, _CMP_GE_OQ),
                                      _mm256_cmp_ps(x, c.max_range, _CMP_LE_OQ));
  bits = static_cast<uint32_t>(_mm256_movemask_ps(inside));
  __m256 u = _mm256_add_ps(q, c.zero);
  if constexpr (kRoundSum) u = Io<T>::in_dtype(u);
  return _mm256_mul_ps(u, c.step);
}

// Elements [b, e): whole steps, then the rest through a zero-padded buffer. Everything the loop
// uses is a local (the mask's byte stores could otherwise alias `a`).
template <typename T, bool kRoundDiff, bool kRoundSum>
TORCHQUANT_TARGET_AVX2_F16C void run_steps(const AffineSpan& a, int64_t b, int64_t e) {
  const T* const x = static_cast<const T*>(a.x);
  T* const y = static_cast<T*>(a.y);
  uint8_t* const bits = a.bits;
  const Lanes c = lanes_of(a.s);
  const int64_t whole_end = b + (e - b) / 8 * 8;
  uint32_t m = 0;
  for (int64_t i = b; i < whole_end; i += 8) {
    Io<T>::store(y + i, affine_step<T, kRoundDiff, kRoundSum>(c, Io<T>::load(x + i), m));
    if (bits != nullptr) bits[static_cast<uint64_t>(i) / 8] = static_cast<uint8_t>(m);
  }
  const int64_t len = e - whole_end;
  if (len == 0) return;
  T in[8], out[8];
  std::memset(static_cast<void*>(in), 0, sizeof(in));
  std::memcpy(static_cast<void*>(in), x + whole_end, static_cast<size_t>(len) * sizeof(T));
  Io<T>::store(out, affine_step<T, kRoundDiff, kRoundSum>(c, Io<T>::load(in), m));
  std::memcpy(static_cast<void*>(y + whole_end), static_cast<const void*>(out),
              static_cast<size_t>(len) * sizeof(T));
  if (bits != nullptr) bits[whole_end / 8] = static_cast<uint8_t>(m & ((1u << len) - 1));
}

// Rounding to T is monotonic and changes no integer of magnitude up to kExact (2^11 for float16's
// 11 significant bits, 2^8 for bfloat16's 8), so two of the three roundings to T can be skipped
// for the usual ranges: that of r - zero (an integer, or a float beyond 2^24) when both clamp
// bounds are within +-kExact, since a value beyond that clamps to the same bound rounded or not;
// that of q + zero (an integer between lo + zero and hi + zero) when both ends are within
// +-kExact.
template <typename T>
TORCHQUANT_TARGET_AVX2_F16C void run(const AffineSpan& a, int64_t b, int64_t e) {
  constexpr float kExact = std::is_same<T, c10::Half>::value ? 2048.0f : 256.0f;
  const AffineScalars<float>& s = a.s;
  const bool diff = std::max(std::fabs(s.lo), std::fabs(s.hi)) > kExact;
  const bool sum = std::max(std::fabs(s.lo + s.zero), std::fabs(s.hi + s.zero)) > kExact;
  if (diff) {
    return sum ? run_steps<T, true, true>(a, b, e) : run_steps<T, true, false>(a, b, e);
  }
  return sum ? run_steps<T, false, true>(a, b, e) : run_steps<T, false, false>(a, b, e);
}

template <>
TORCHQUANT_TARGET_AVX2_F16C void run<float>(const AffineSpan& a, int64_t b, int64_t e) {
  run_steps<float, false, false>(a, b, e);
}

}  // namespace

bool affine_avx2_available() { return cpu_isa() >= CpuIsa::kAvx2; }

void affine_avx2(const AffineSpan& a, int64_t b, int64_t e) {
  switch (a.dtype) {
    case RowsDtype::kHalf:
      return run<c10::Half>(a, b, e);
    case RowsDtype::kBFloat16:
      return run<c10::BFloat16>(a, b, e);
    case RowsDtype::kFloat:
      break;
  }
  run<float>(a, b, e);
}

}  // namespace detail
}  // namespace torchquant

#else  // not x86-64: the generic loop runs

namespace torchquant {
namespace detail {

bool affine_avx2_available() { return false; }

void affine_avx2(const AffineSpan&, int64_t, int64_t) {
  TORCH_INTERNAL_ASSERT(false, "affine_avx2: only built for x86-64");
}

}  // namespace detail
}  // namespace torchquant

#endif
