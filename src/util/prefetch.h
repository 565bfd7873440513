#pragma once
// Software prefetch for the streaming CPU kernels (fake quantization, its backward, max |x|).
// Internal header.

#include <c10/macros/Macros.h>

#include <cstdint>

namespace torchquant {
namespace detail {

/// How far ahead of the element being processed the streaming kernels prefetch. On the Xeon VM
/// these kernels were measured on, a single core's hardware prefetchers alone left them waiting for
/// memory (on data read from DRAM and from L2 alike); 8 KiB ahead was the fastest distance tried.
constexpr int64_t kPrefetchAhead = 8192;

/// Prefetches the cache lines of bytes [kPrefetchAhead, kPrefetchAhead + bytes) past `p`, for
/// reading or (kWrite) for writing. The addresses are computed as integers and may lie past the
/// end of the object: a prefetch never faults.
template <bool kWrite = false>
C10_ALWAYS_INLINE void prefetch_ahead(const void* p, int64_t bytes) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(p) + kPrefetchAhead;
  for (int64_t offset = 0; offset < bytes; offset += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(base + static_cast<uintptr_t>(offset)),
                       kWrite ? 1 : 0, 3);
  }
}

/// Runs `body(i)` for every i in [0, n) in chunks of 512 bytes of T, each chunk prefetching the
/// lines of `read` and (for writing) `write` kPrefetchAhead bytes on; `write` may be `read`. A
/// body that the compiler vectorises stays vectorised: the inner loop is a plain counted loop.
///
///   prefetched_loop(x, y, n, [&](int64_t i) { y[i] = 2 * x[i]; });
template <typename T, typename Body>
C10_ALWAYS_INLINE void prefetched_loop(const T* read, T* write, int64_t n, const Body& body) {
  constexpr int64_t kChunk = 512 / sizeof(T);
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t stop = c + kChunk < n ? c + kChunk : n;
    prefetch_ahead(read + c, kChunk * sizeof(T));
    if (write != read) prefetch_ahead<true>(write + c, kChunk * sizeof(T));
    for (int64_t i = c; i < stop; ++i) body(i);
  }
}

}  // namespace detail
}  // namespace torchquant
