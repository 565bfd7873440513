#pragma once
// What the fuzz targets share: a byte reader for structured inputs, and the rule that a library
// error is a c10::Error (anything else escaping, a crash or a sanitizer report is a finding).

#include <c10/util/Exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

namespace torchquant {
namespace fuzz {

/// Reads little values off the fuzz input; past its end every read gives 0.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  /// An integer in [lo, hi].
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(u8()) % (hi - lo + 1); }
  bool flag() { return (u8() & 1) != 0; }
  /// Any float32 bit pattern (NaN, Inf, subnormals included).
  float f32() {
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits |= static_cast<uint32_t>(u8()) << (8 * i);
    float v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
  }
  size_t left() const { return pos_ < size_ ? size_ - pos_ : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// Runs `fn`; a c10::Error is the library refusing bad input, which is fine.
template <typename F>
void expect_only_c10_errors(F&& fn) {
  try {
    std::forward<F>(fn)();
  } catch (const c10::Error&) {
  }
}

/// A violated invariant: names it, then stops with a crash libFuzzer reports (and saves the
/// input of).
#define TORCHQUANT_FUZZ_ASSERT(cond)                                                        \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "invariant violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

}  // namespace fuzz
}  // namespace torchquant
