#pragma once
// Streaming (non-temporal) stores for the CPU kernels' large outputs: written to memory without
// each line first being read into the cache (a regular store's read for ownership), a third less
// memory traffic than a copy with regular stores, where the output could not stay cached anyway.
// Internal header.

#include <cstdint>

namespace torchquant {
namespace detail {

/// Whether an output of `bytes` is written with streaming stores: x86-64 only, from the size of
/// the last-level cache up (Linux's /sys/devices/system/cpu/cpu0/cache, else
/// sysconf(_SC_LEVEL3_CACHE_SIZE), else 32 MiB); below it an output the next op reads may still be
/// in the cache. A live ScopedStreamingStores decides instead, else the environment's
/// TORCHQUANT_STREAMING_STORES=0 (never) or 1 (always), read at the first call.
bool use_streaming_stores(int64_t bytes);

/// TORCHQUANT_STREAMING_STORES's value as -1 (unset or empty: by size), 0 or 1; anything else is
/// an error naming the variable.
int parse_streaming_stores_setting(const char* value);

/// While it lives, streaming stores are used for every output size (`on`) or for none: the tests
/// run both paths on small tensors.
///
///   { detail::ScopedStreamingStores on(true); ops::fake_tensor_quant(x, amax, 8, false, true); }
class ScopedStreamingStores {
 public:
  explicit ScopedStreamingStores(bool on);
  ~ScopedStreamingStores();
  ScopedStreamingStores(const ScopedStreamingStores&) = delete;
  ScopedStreamingStores& operator=(const ScopedStreamingStores&) = delete;

 private:
  int previous_;
};

/// Copies `bytes` from `src` to `dst` (not overlapping), with streaming stores for the 16-byte
/// aligned part of `dst` (regular ones around it, and everywhere off x86-64). Other threads may
/// see the streamed part late: call stream_fence() before they read it.
void stream_copy(const void* src, void* dst, int64_t bytes);

/// Orders the calling thread's streaming stores before its later stores (an sfence).
void stream_fence();

}  // namespace detail
}  // namespace torchquant
