#pragma once
// The fake-quantization forward with AVX2 intrinsics, for float32, float16 and bfloat16 inputs
// with one scale per tensor, per row of at least 8 elements, or per element of a repeated pattern:
// 8 elements a step, their output
// stored (with streaming stores when asked and the output is aligned) and their mask bits written
// as one byte, in the same step. The generic loop in fake_quant_kernel.cpp computes into a buffer
// that is then streamed out and packs a bool mask afterwards (and converts 16-bit types one
// element at a time in software); this one reads, computes and writes in one go. Bit-identical to
// the generic loop. Internal header.

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

namespace torchquant {
namespace detail {

/// The element type of QuantRows::x and y (computed in float32 for all three).
enum class RowsDtype { kFloat, kHalf, kBFloat16 };

/// The RowsDtype of float, c10::Half or c10::BFloat16.
template <typename T>
constexpr RowsDtype rows_dtype() {
  static_assert(std::is_same<T, float>::value || std::is_same<T, c10::Half>::value ||
                    std::is_same<T, c10::BFloat16>::value,
                "rows_dtype: float, c10::Half or c10::BFloat16");
  return std::is_same<T, float>::value       ? RowsDtype::kFloat
         : std::is_same<T, c10::Half>::value ? RowsDtype::kHalf
                                             : RowsDtype::kBFloat16;
}

/// An input viewed as rows of `inner` elements, row r using the values of channel r % channels
/// (per tensor: channels = 1 and inner = 0, one row of any length); or, when `period` is set,
/// element i using the values at i % period of arrays of `period` values (a per-channel layout with
/// short rows, its values repeated per element, or a general one: period = numel).
struct QuantRows {
  const void* x = nullptr;
  void* y = nullptr;
  RowsDtype dtype = RowsDtype::kFloat;
  uint8_t* bits = nullptr;           // packed mask of element 0 onwards (mask_bits.h), or null
  const float* scale_mul = nullptr;  // `channels` values each
  const float* scale_div = nullptr;  // (float16: the scale rounded to float16, as upstream)
  const float* amax = nullptr;
  int64_t inner = 0;  // 0 or at least 8
  int64_t channels = 1;
  int64_t period = 0;  // 0: rows
  float lo = 0;
  float hi = 0;
  bool fake = true;     // q / scale_div, else q
  bool stream = false;  // streaming stores for the aligned part of the output
};

/// Whether quant_rows_avx2 runs here: cpu_isa() at least kAvx2 (AVX2 and F16C) on x86-64.
bool quant_rows_avx2_available();

/// Elements [b, e) of `a` (b a multiple of 8 when a.bits is set); returns whether any was
/// negative. Ends with a store fence when it streamed.
///
///   QuantRows a; a.x = x; a.y = y; a.scale_mul = &s; a.scale_div = &s; a.amax = &m;
///   a.lo = -127; a.hi = 127;
///   bool negative = quant_rows_avx2(a, 0, n);
bool quant_rows_avx2(const QuantRows& a, int64_t b, int64_t e);

}  // namespace detail
}  // namespace torchquant
