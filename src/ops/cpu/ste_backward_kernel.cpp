// CPU kernel of the straight-through estimator's backward: grad where the mask is set, else 0,
// into a new tensor or into the gradient itself. With a packed mask only the cleared bits'
// elements are zeroed: in the gradient itself, or in a copy of it.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/mask_bits.h"
#include "util/prefetch.h"
#include "util/streaming_stores.h"

namespace torchquant {
namespace detail {
namespace {

// Same-size unsigned integer of T.
template <typename T>
using Bits =
    std::conditional_t<sizeof(T) == 2, uint16_t,
                       std::conditional_t<sizeof(T) == 4, uint32_t,
                                          std::conditional_t<sizeof(T) == 8, uint64_t, void>>>;

// g[i] where m[i], else +0, bit for bit. Written on the bit patterns (g & -m, m being 0 or 1) so
// the loops below have no branch and no conditional load: GCC vectorises them (a `m[i] ? g[i] : 0`
// select stays a scalar, branchy loop). The mask's bytes are read as uint8_t: GCC vectorises a
// zero extension from uint8_t, not from bool.
template <typename T>
C10_ALWAYS_INLINE void select_one(const T* g, const uint8_t* mb, T* out, int64_t i) {
  using U = Bits<T>;
  U bits;
  std::memcpy(&bits, g + i, sizeof(U));
  bits &= static_cast<U>(-static_cast<U>(mb[i]));
  std::memcpy(out + i, &bits, sizeof(U));
}

template <typename T>
C10_ALWAYS_INLINE void masked_copy(const T* __restrict g, const bool* __restrict m,
                                   T* __restrict out, int64_t n) {
  const auto* mb = reinterpret_cast<const uint8_t*>(m);
  prefetched_loop(g, out, n, [&](int64_t i) { select_one(g, mb, out, i); });
}

// The same select written into the gradient itself (g is also the output: no __restrict__).
template <typename T>
C10_ALWAYS_INLINE void masked_zero(T* g, const bool* __restrict m, int64_t n) {
  const auto* mb = reinterpret_cast<const uint8_t*>(m);
  prefetched_loop(g, g, n, [&](int64_t i) { select_one(g, mb, g, i); });
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TORCHQUANT_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define TORCHQUANT_AVX2_CLONE
#endif

TORCHQUANT_AVX2_CLONE void masked_copy_f32(const float* g, const bool* m, float* out, int64_t n) {
  masked_copy(g, m, out, n);
}

TORCHQUANT_AVX2_CLONE void masked_zero_f32(float* g, const bool* m, int64_t n) {
  masked_zero(g, m, n);
}

template <typename T>
void masked_copy_any(const T* g, const bool* m, T* out, int64_t n) {
  if (g == out) {
    if constexpr (std::is_same<T, float>::value) {
      masked_zero_f32(out, m, n);
    } else {
      masked_zero(out, m, n);
    }
  } else if constexpr (std::is_same<T, float>::value) {
    masked_copy_f32(g, m, out, n);
  } else {
    masked_copy(g, m, out, n);
  }
}

// In place with a packed mask (mask_bits.h): only elements whose bit is clear are written (to +0,
// what select_one gives them); a word of 64 set bits is skipped without touching the gradient.
// With a calibrated amax nearly every word is, so this reads little more than the mask's n / 8
// bytes. `bits` holds the elements [0, n) of this call, the first at bit 0 of bits[0].
// The cleared bits of elements [base, base + count) (count <= 64, base a multiple of 64) as a
// word, element base at bit 0.
inline uint64_t cleared_bits(const uint8_t* bits, int64_t base, int64_t count) {
  uint64_t word = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (count == 64) {
    std::memcpy(&word, bits + base / 8, sizeof(word));
    return ~word;
  }
#endif
  for (int64_t k = 0; k < (count + 7) / 8; ++k) {
    word |= static_cast<uint64_t>(bits[base / 8 + k]) << (8 * k);
  }
  const uint64_t cleared = ~word;
  return count < 64 ? cleared & ((uint64_t{1} << count) - 1) : cleared;
}

// Zeroes g[base + k] for each set bit k of `cleared`.
template <typename T>
void zero_at(T* g, int64_t base, uint64_t cleared) {
  for (; cleared != 0; cleared &= cleared - 1) {
    std::memset(g + base + __builtin_ctzll(cleared), 0, sizeof(T));
  }
}

template <typename T>
void zero_cleared(T* g, const uint8_t* bits, int64_t n) {
  for (int64_t base = 0; base < n; base += 64) {
    zero_at(g, base, cleared_bits(bits, base, std::min<int64_t>(64, n - base)));
  }
}

// The out-of-place result streamed to memory (util/streaming_stores.h): runs of 64-element words
// whose bits are all set straight from g, a word with a cleared bit through a buffer where its
// elements are zeroed.
template <typename T>
void stream_masked_copy(const T* g, const uint8_t* bits, T* out, int64_t n) {
  constexpr auto kSize = static_cast<int64_t>(sizeof(T));
  alignas(64) T word[64];
  int64_t run = 0;  // the first element not yet written
  for (int64_t base = 0; base < n; base += 64) {
    const int64_t count = std::min<int64_t>(64, n - base);
    const uint64_t cleared = cleared_bits(bits, base, count);
    if (cleared == 0) continue;
    stream_copy(g + run, out + run, (base - run) * kSize);
    std::memcpy(word, g + base, static_cast<size_t>(count * kSize));
    zero_at(word, 0, cleared);
    stream_copy(word, out + base, count * kSize);
    run = base + count;
  }
  stream_copy(g + run, out + run, (n - run) * kSize);
}

}  // namespace

void ste_backward_cpu(const at::Tensor& grad, const at::Tensor& mask,
                      const at::Tensor& grad_input) {
  const int64_t n = grad.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "ste_backward_cpu", [&] {
        const scalar_t* gp = grad.const_data_ptr<scalar_t>();
        scalar_t* op = grad_input.data_ptr<scalar_t>();
        if (mask.scalar_type() == at::kBool) {
          const bool* mp = mask.const_data_ptr<bool>();
          at::parallel_for(0, n, 32768, [&](int64_t b, int64_t e) {
            masked_copy_any(gp + b, mp + b, op + b, e - b);
          });
          return;
        }
        // Packed bits (mask_bits.h): only the cleared bits' elements are zeroed, in the gradient
        // itself or in a copy of it made block by block (on an AVX2-only AMD EPYC, unpacking the
        // bits to bools and selecting cost about 1.2x a copy; the copy and the mask's words cost
        // about a copy). In place a block reads little but its mask: larger tasks.
        // A new tensor larger than the last-level cache is written with streaming stores.
        const uint8_t* bits = mask.const_data_ptr<uint8_t>();
        const bool in_place = gp == op;
        if (!in_place && use_streaming_stores(n * static_cast<int64_t>(sizeof(scalar_t)))) {
          // One fence per task, not per block (a fence every 16 KiB cost ~6% of a streamed copy).
          at::parallel_for(0, (n + 63) / 64, 32768 / 64, [&](int64_t w0, int64_t w1) {
            const int64_t b = w0 * 64;
            stream_masked_copy(gp + b, bits + b / 8, op + b, std::min(n, w1 * 64) - b);
            stream_fence();
          });
          return;
        }
        for_each_mask_block(n, in_place ? 1 << 20 : 32768, [&](int64_t b, int64_t e, bool*) {
          if (!in_place) std::memcpy(op + b, gp + b, static_cast<size_t>(e - b) * sizeof(scalar_t));
          zero_cleared(op + b, bits + b / 8, e - b);
        });
      });
}

}  // namespace detail
}  // namespace torchquant
