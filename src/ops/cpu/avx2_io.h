#pragma once
// Eight float32, float16 or bfloat16 values loaded into an AVX2 register as floats and stored
// from one, for the CPU kernels written in AVX2 intrinsics (fake_quant_avx2.cpp,
// affine_avx2.cpp). x86-64 only; internal header.

#if defined(__x86_64__)
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "util/x86_target.h"

namespace torchquant {
namespace detail {

/// How 8 elements of T are loaded as floats and stored from them, with the conversions of the
/// generic C++ loops (c10's, not compiled for F16C there): float16 and bfloat16 round to nearest
/// even; a NaN becomes float16's sign | 0x7e00 and bfloat16's 0x7fc0, as c10 makes them.
/// `in_dtype(v)` is v rounded to T and back (what `float(T(v))` gives), except that a NaN only
/// stays a NaN of the same sign (its payload is left to the next store's rule): fewer
/// instructions for intermediate results.
template <typename T>
struct Io;

template <>
struct Io<float> {
  static TORCHQUANT_TARGET_AVX2_F16C __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static TORCHQUANT_TARGET_AVX2_F16C __m256 in_dtype(__m256 v) { return v; }
  static TORCHQUANT_TARGET_AVX2_F16C void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
  static TORCHQUANT_TARGET_AVX2_F16C void stream(float* p, __m256 v) { _mm256_stream_ps(p, v); }
};

template <>
struct Io<c10::Half> {
  static TORCHQUANT_TARGET_AVX2_F16C __m256 load(const c10::Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static TORCHQUANT_TARGET_AVX2_F16C __m128i bits(__m256 v) {
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m256 quiet = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)),
                                      _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
    return _mm256_cvtps_ph(_mm256_blendv_ps(v, quiet, nan),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static TORCHQUANT_TARGET_AVX2_F16C __m256 in_dtype(__m256 v) {
    // F16C keeps a quiet NaN's sign and its payload's top bits, among them the quiet bit.
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static TORCHQUANT_TARGET_AVX2_F16C void store(c10::Half* p, __m256 v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bits(v));
  }
  static TORCHQUANT_TARGET_AVX2_F16C void stream(c10::Half* p, __m256 v) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), bits(v));
  }
};

template <>
struct Io<c10::BFloat16> {
  static TORCHQUANT_TARGET_AVX2_F16C __m256 from_bits(__m128i b) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16));
  }
  static TORCHQUANT_TARGET_AVX2_F16C __m256 load(const c10::BFloat16* p) {
    return from_bits(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // Rounded to nearest even in the top 16 bits of each lane (a NaN's bits could carry into the
  // sign: NaN lanes are the caller's).
  static TORCHQUANT_TARGET_AVX2_F16C __m256i rounded_high(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i bias =
        _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)),
                         _mm256_set1_epi32(0x7fff));
    return _mm256_add_epi32(u, bias);
  }
  static TORCHQUANT_TARGET_AVX2_F16C __m128i bits(__m256 v) {
    const __m256i rounded = _mm256_srli_epi32(rounded_high(v), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7fc0), nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  }
  static TORCHQUANT_TARGET_AVX2_F16C __m256 in_dtype(__m256 v) {
    const __m256 r = _mm256_castsi256_ps(
        _mm256_and_si256(rounded_high(v), _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  static TORCHQUANT_TARGET_AVX2_F16C void store(c10::BFloat16* p, __m256 v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bits(v));
  }
  static TORCHQUANT_TARGET_AVX2_F16C void stream(c10::BFloat16* p, __m256 v) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), bits(v));
  }
};

}  // namespace detail
}  // namespace torchquant
#endif
