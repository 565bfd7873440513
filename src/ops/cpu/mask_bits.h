#pragma once
// The CPU straight-through mask as packed bits: bit (i % 8) of byte (i / 8) is element i's
// |x| <= amax, elements in contiguous order. One eighth of a bool mask's memory traffic for the
// forward that writes it and the backward that reads it.

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace torchquant {
namespace detail {

/// Elements per block that the CPU kernels stage through a bool buffer on the stack (a multiple
/// of 64, so that blocks of one tensor never share a mask byte).
constexpr int64_t kMaskBlock = 4096;

/// Bytes of a packed mask for `n` elements.
inline int64_t packed_mask_bytes(int64_t n) { return (n + 7) / 8; }

/// Packs `n` bools (0 or 1) into ceil(n / 8) bytes; unused high bits of the last byte are 0.
void pack_mask_bits(const bool* mask, int64_t n, uint8_t* bits);

/// Unpacks `n` elements' bits into bools (0 or 1): the inverse of pack_mask_bits, for tests and
/// inspection (the backward kernels read the packed bits directly).
void unpack_mask_bits(const uint8_t* bits, int64_t n, bool* mask);

/// Runs `fn(begin, end, local)` for every block [begin, end) of kMaskBlock elements of [0, n),
/// blocks split over at::parallel_for (at least `grain` elements a task); `local` is a bool buffer
/// of kMaskBlock on the running thread's stack, for the block's mask before packing.
template <typename F>
void for_each_mask_block(int64_t n, int64_t grain, const F& fn) {
  const int64_t blocks = (n + kMaskBlock - 1) / kMaskBlock;
  at::parallel_for(0, blocks, std::max<int64_t>(1, grain / kMaskBlock),
                   [&](int64_t first, int64_t last) {
                     bool local[kMaskBlock];
                     for (int64_t k = first; k < last; ++k) {
                       const int64_t begin = k * kMaskBlock;
                       fn(begin, std::min(n, begin + kMaskBlock), local);
                     }
                   });
}

/// Runs `fn(begin, end, mask)` over [0, n) split by at::parallel_for (at least `grain` elements a
/// task). Without `bits`, `mask` is null; with them, blocks of kMaskBlock elements get a bool
/// buffer on the stack that is packed into `bits` after `fn` fills it.
template <typename F>
void for_each_block_packing_mask(int64_t n, int64_t grain, uint8_t* bits, const F& fn) {
  if (bits == nullptr) {
    at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) { fn(begin, end, nullptr); });
    return;
  }
  for_each_mask_block(n, grain, [&](int64_t begin, int64_t end, bool* local) {
    fn(begin, end, local);
    pack_mask_bits(local, end - begin, bits + begin / 8);
  });
}

}  // namespace detail
}  // namespace torchquant
