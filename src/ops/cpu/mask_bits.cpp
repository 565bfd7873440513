#include "ops/cpu/mask_bits.h"

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TORCHQUANT_MASK_AVX2 1
#endif

namespace torchquant {
namespace detail {
namespace {

void pack_scalar(const bool* mask, int64_t n, uint8_t* bits) {
  const auto* m = reinterpret_cast<const uint8_t*>(mask);
  for (int64_t j = 0; j * 8 < n; ++j) {
    uint8_t byte = 0;
    for (int64_t k = 0; k < 8 && j * 8 + k < n; ++k) {
      byte = static_cast<uint8_t>(byte | (m[j * 8 + k] << k));
    }
    bits[j] = byte;
  }
}

void unpack_scalar(const uint8_t* bits, int64_t n, bool* mask) {
  auto* m = reinterpret_cast<uint8_t*>(mask);
  for (int64_t i = 0; i < n; ++i) m[i] = (bits[i >> 3] >> (i & 7)) & 1;
}

#ifdef TORCHQUANT_MASK_AVX2
// 32 bools at a time: each byte's bit 0 moved to bit 7, and movemask collects them in order.
__attribute__((target("avx2"))) void pack_avx2(const bool* mask, int64_t n, uint8_t* bits) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + i));
    const auto word = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(v, 7)));
    std::memcpy(bits + i / 8, &word, sizeof(word));
  }
  pack_scalar(mask + i, n - i, bits + i / 8);
}

// 32 elements at a time: byte k of the vector gets mask byte k / 8, keeps bit k % 8, and
// becomes 0 or 1.
__attribute__((target("avx2"))) void unpack_avx2(const uint8_t* bits, int64_t n, bool* mask) {
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i select =
      _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16,
                       32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const __m256i one = _mm256_set1_epi8(1);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint32_t word;
    std::memcpy(&word, bits + i / 8, sizeof(word));
    // The shuffle works within 128-bit lanes: both lanes hold all four bytes.
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(word)), spread);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + i), _mm256_and_si256(set, one));
  }
  unpack_scalar(bits + i / 8, n - i, mask + i);
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

}  // namespace

void pack_mask_bits(const bool* mask, int64_t n, uint8_t* bits) {
#ifdef TORCHQUANT_MASK_AVX2
  if (has_avx2()) return pack_avx2(mask, n, bits);
#endif
  pack_scalar(mask, n, bits);
}

void unpack_mask_bits(const uint8_t* bits, int64_t n, bool* mask) {
#ifdef TORCHQUANT_MASK_AVX2
  if (has_avx2()) return unpack_avx2(bits, n, mask);
#endif
  unpack_scalar(bits, n, mask);
}

}  // namespace detail
}  // namespace torchquant
