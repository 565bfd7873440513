// The fake-quantization forward with AVX2 intrinsics (and F16C's float16 conversions); see
// fake_quant_avx2.h. Each step does what quant_span in fake_quant_kernel.cpp does to one element,
// with the same IEEE operations in the same order, to 8 of them.

#include "ops/cpu/fake_quant_avx2.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include "util/cpu_isa.h"

#if defined(__x86_64__)
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/cpu/avx2_io.h"
#include "util/prefetch.h"
#include "util/x86_target.h"

namespace torchquant {
namespace detail {
namespace {

// One row's values, in every lane (or, where a step crosses into the next row, per lane).
struct RowValues {
  __m256 scale_mul, scale_div, amax;
};

TORCHQUANT_TARGET_AVX2_F16C RowValues row_values(const QuantRows& a, int64_t row) {
  const int64_t ch = row % a.channels;
  return {_mm256_set1_ps(a.scale_mul[ch]), _mm256_set1_ps(a.scale_div[ch]),
          _mm256_set1_ps(a.amax[ch])};
}

// Walks the rows step by step: the values of the 8 lanes from element i, and the row of the
// element a step moved to. Rows are at least 8 elements long, so a step crosses one end at most.
class RowWalk {
 public:
  TORCHQUANT_TARGET_AVX2_F16C RowWalk(const QuantRows& a, int64_t begin) : a_(&a) {
    if (a.inner == 0) {
      end_ = std::numeric_limits<int64_t>::max();
    } else {
      row_ = begin / a.inner;
      end_ = (row_ + 1) * a.inner;
    }
    current_ = row_values(a, row_);
  }

  // Values of lanes i .. i + 7, i in the current row.
  TORCHQUANT_TARGET_AVX2_F16C RowValues lanes(int64_t i) const {
    if (i + 8 <= end_) return current_;
    const RowValues next = row_values(*a_, row_ + 1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 later = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(static_cast<int>(end_ - i) - 1)));
    return {_mm256_blendv_ps(current_.scale_mul, next.scale_mul, later),
            _mm256_blendv_ps(current_.scale_div, next.scale_div, later),
            _mm256_blendv_ps(current_.amax, next.amax, later)};
  }

  // The next step starts at element i.
  TORCHQUANT_TARGET_AVX2_F16C void moved_to(int64_t i) {
    if (i < end_) return;
    ++row_;
    end_ += a_->inner;
    current_ = row_values(*a_, row_);
  }

 private:
  const QuantRows* a_;
  int64_t row_ = 0;
  int64_t end_ = 0;
  RowValues current_;
};

// The same walk over per-element values repeating every `period` elements: a step's values are
// loaded from the arrays, or gathered lane by lane where the pattern restarts inside the step.
class PeriodWalk {
 public:
  TORCHQUANT_TARGET_AVX2_F16C PeriodWalk(const QuantRows& a, int64_t begin)
      : a_(&a), at_(begin), pos_(begin % a.period) {}

  TORCHQUANT_TARGET_AVX2_F16C RowValues lanes(int64_t) const {
    const int64_t period = a_->period;
    if (pos_ + 8 <= period) {
      return {_mm256_loadu_ps(a_->scale_mul + pos_), _mm256_loadu_ps(a_->scale_div + pos_),
              _mm256_loadu_ps(a_->amax + pos_)};
    }
    alignas(32) float mul[8], div[8], amax[8];
    for (int64_t k = 0, at = pos_; k < 8; ++k, at = at + 1 == period ? 0 : at + 1) {
      mul[k] = a_->scale_mul[at];
      div[k] = a_->scale_div[at];
      amax[k] = a_->amax[at];
    }
    return {_mm256_load_ps(mul), _mm256_load_ps(div), _mm256_load_ps(amax)};
  }

  // A step moves at most 8 elements on: a few subtractions instead of a division.
  TORCHQUANT_TARGET_AVX2_F16C void moved_to(int64_t i) {
    for (pos_ += i - at_; pos_ >= a_->period;) pos_ -= a_->period;
    at_ = i;
  }

 private:
  const QuantRows* a_;
  int64_t at_;   // the element the walk is at
  int64_t pos_;  // at_ % period
};

// One step's results.
struct Step {
  __m256 y;
  uint32_t bits;  // |x| <= amax, lane k at bit k
  __m256 negative;
};

// The clamp's bounds in every lane.
struct Bounds {
  __m256 lo, hi;
};

TORCHQUANT_TARGET_AVX2_F16C Bounds bounds_of(const QuantRows& a) {
  return {_mm256_set1_ps(a.lo), _mm256_set1_ps(a.hi)};
}

// What the fake output divides: q itself, or for float16 q rounded to float16 (upstream divides in
// float16: q.half() / scale.half()).
template <typename T>
TORCHQUANT_TARGET_AVX2_F16C __m256 dividend(__m256 q) {
  return std::is_same<T, c10::Half>::value ? Io<T>::in_dtype(q) : q;
}

// q = round_half_even(clamp(x * scale_mul, lo, hi)) (NaN kept, sign of the clamped value), then
// q / scale_div when kFake: quant_math.h's operations on 8 lanes. max(lo, t) and min(hi, t)
// return t when t is NaN, as `t < lo ? lo : t` and `t > hi ? hi : t` do. The output as floats,
// still to be stored as T.
template <typename T, bool kFake>
TORCHQUANT_TARGET_AVX2_F16C Step quant_step(const Bounds& bounds, __m256 x, const RowValues& v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  __m256 t = _mm256_mul_ps(x, v.scale_mul);
  t = _mm256_min_ps(bounds.hi, _mm256_max_ps(bounds.lo, t));
  const __m256 r = _mm256_sub_ps(_mm256_add_ps(t, magic), magic);
  const __m256 q = _mm256_or_ps(_mm256_andnot_ps(sign, r), _mm256_and_ps(sign, t));
  const __m256 kept = _mm256_cmp_ps(_mm256_andnot_ps(sign, x), v.amax, _CMP_LE_OQ);
  return {kFake ? _mm256_div_ps(dividend<T>(q), v.scale_div) : q,
          static_cast<uint32_t>(_mm256_movemask_ps(kept)),
          _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ)};
}

// Fewer than 8 elements from i, through a zero-padded buffer (a zero is neither negative nor
// written back); their mask bits, when wanted, start a byte (i is a multiple of 8 then).
template <typename T, class Walk>
TORCHQUANT_TARGET_AVX2_F16C __m256 partial_step(const QuantRows& a, Walk& walk, int64_t i,
                                                int64_t len) {
  T in[8], out[8];
  std::memset(static_cast<void*>(in), 0, sizeof(in));
  std::memcpy(static_cast<void*>(in), static_cast<const T*>(a.x) + i,
              static_cast<size_t>(len) * sizeof(T));
  const __m256 x = Io<T>::load(in);
  const Step s = a.fake ? quant_step<T, true>(bounds_of(a), x, walk.lanes(i))
                        : quant_step<T, false>(bounds_of(a), x, walk.lanes(i));
  Io<T>::store(out, s.y);
  std::memcpy(static_cast<void*>(static_cast<T*>(a.y) + i), static_cast<const void*>(out),
              static_cast<size_t>(len) * sizeof(T));
  if (a.bits != nullptr) a.bits[i / 8] = static_cast<uint8_t>(s.bits & ((1u << len) - 1));
  walk.moved_to(i + len);
  return s.negative;
}

// Elements [i, e) in whole steps from i (e - i a multiple of 8, i >= 0), stored with streaming
// stores (kStream, the output aligned to a step's bytes) or regular ones, mask bytes written when
// kBits; reads prefetched kPrefetchAhead on. Everything the loop uses is a local: the mask's byte
// stores could otherwise alias `a` and `walk` and have them reloaded every step.
template <typename T, class Walk, bool kStream, bool kFake, bool kBits>
TORCHQUANT_TARGET_AVX2_F16C __m256 whole_steps(const QuantRows& a, Walk& walk, int64_t i, int64_t e,
                                               __m256 negative) {
  constexpr int64_t kPrefetchEvery = 512 / sizeof(T);
  const T* const x = static_cast<const T*>(a.x);
  T* const y = static_cast<T*>(a.y);
  uint8_t* const bits = a.bits;
  const Bounds bounds = bounds_of(a);
  Walk w = walk;
  for (int64_t next_prefetch = i; i < e; i += 8) {
    if (i >= next_prefetch) {
      prefetch_ahead(x + i, 512);
      if (!kStream && y != x) prefetch_ahead<true>(y + i, 512);
      next_prefetch = i + kPrefetchEvery;
    }
    const Step s = quant_step<T, kFake>(bounds, Io<T>::load(x + i), w.lanes(i));
    if constexpr (kStream) {
      Io<T>::stream(y + i, s.y);
    } else {
      Io<T>::store(y + i, s.y);
    }
    if constexpr (kBits) bits[static_cast<uint64_t>(i) / 8] = static_cast<uint8_t>(s.bits);
    negative = _mm256_or_ps(negative, s.negative);
    w.moved_to(i + 8);
  }
  walk = w;
  return negative;
}

template <typename T, class Walk>
using WholeStepsFn = __m256 (*)(const QuantRows&, Walk&, int64_t, int64_t, __m256);

template <typename T, class Walk, bool kStream, bool kFake>
WholeStepsFn<T, Walk> whole_steps_for(bool with_bits) {
  return with_bits ? whole_steps<T, Walk, kStream, kFake, true>
                   : whole_steps<T, Walk, kStream, kFake, false>;
}

template <typename T, class Walk>
WholeStepsFn<T, Walk> whole_steps_for(bool stream, bool fake, bool with_bits) {
  if (stream) {
    return fake ? whole_steps_for<T, Walk, true, true>(with_bits)
                : whole_steps_for<T, Walk, true, false>(with_bits);
  }
  return fake ? whole_steps_for<T, Walk, false, true>(with_bits)
              : whole_steps_for<T, Walk, false, false>(with_bits);
}

// quant_rows_avx2 for elements of type T, the values walked by Walk.
template <typename T, class Walk>
TORCHQUANT_TARGET_AVX2_F16C bool run(const QuantRows& a, int64_t b, int64_t e) {
  constexpr uintptr_t kStepBytes = 8 * sizeof(T);
  Walk walk(a, b);
  __m256 negative = _mm256_setzero_ps();
  int64_t i = b;
  T* const y = static_cast<T*>(a.y);
  // Without mask bits to keep byte-aligned, a few elements first align the output to a step.
  if (a.stream && a.bits == nullptr) {
    const auto misaligned = reinterpret_cast<uintptr_t>(y + i) % kStepBytes;
    const int64_t head =
        std::min<int64_t>(e - i, misaligned == 0 || misaligned % sizeof(T) != 0
                                     ? 0
                                     : static_cast<int64_t>((kStepBytes - misaligned) / sizeof(T)));
    if (head > 0) negative = _mm256_or_ps(negative, partial_step<T, Walk>(a, walk, i, head));
    i += head;
  }
  const int64_t whole_end = i + (e - i) / 8 * 8;
  const bool stream = a.stream && reinterpret_cast<uintptr_t>(y + i) % kStepBytes == 0;
  negative =
      whole_steps_for<T, Walk>(stream, a.fake, a.bits != nullptr)(a, walk, i, whole_end, negative);
  if (whole_end < e) {
    negative = _mm256_or_ps(negative, partial_step<T, Walk>(a, walk, whole_end, e - whole_end));
  }
  if (stream) _mm_sfence();
  return _mm256_movemask_ps(negative) != 0;
}

template <class Walk>
bool run_walk(const QuantRows& a, int64_t b, int64_t e) {
  switch (a.dtype) {
    case RowsDtype::kHalf:
      return run<c10::Half, Walk>(a, b, e);
    case RowsDtype::kBFloat16:
      return run<c10::BFloat16, Walk>(a, b, e);
    case RowsDtype::kFloat:
      break;
  }
  return run<float, Walk>(a, b, e);
}

}  // namespace

bool quant_rows_avx2_available() { return cpu_isa() >= CpuIsa::kAvx2; }

bool quant_rows_avx2(const QuantRows& a, int64_t b, int64_t e) {
  return a.period > 0 ? run_walk<PeriodWalk>(a, b, e) : run_walk<RowWalk>(a, b, e);
}

}  // namespace detail
}  // namespace torchquant

#else  // not x86-64: the generic loop runs

namespace torchquant {
namespace detail {

bool quant_rows_avx2_available() { return false; }

bool quant_rows_avx2(const QuantRows&, int64_t, int64_t) {
  TORCH_INTERNAL_ASSERT(false, "quant_rows_avx2: only built for x86-64");
  return false;
}

}  // namespace detail
}  // namespace torchquant

#endif
