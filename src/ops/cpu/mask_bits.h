#pragma once
// The CPU straight-through mask as packed bits: bit (i % 8) of byte (i / 8) is element i's
// |x| <= amax, elements in contiguous order. One eighth of a bool mask's memory traffic for the
// forward that writes it and the backward that reads it.

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

/// Unpacks `n` elements' bits into bools (0 or 1).
void unpack_mask_bits(const uint8_t* bits, int64_t n, bool* mask);

}  // namespace detail
}  // namespace torchquant
