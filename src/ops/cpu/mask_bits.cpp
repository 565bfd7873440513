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
  auto* m = reinterpret_cast<uint8_t*>(mask);
  for (int64_t i = 0; i < n; ++i) m[i] = (bits[i >> 3] >> (i & 7)) & 1;
}

}  // namespace detail
}  // namespace torchquant
