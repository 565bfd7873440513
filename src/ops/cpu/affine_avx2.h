#pragma once
// fake_affine_tensor_quant's loop in AVX2 intrinsics for float32, float16 and bfloat16: 8 elements
// a step read, quantized with the operations of the generic loop in affine_kernel.cpp in the
// same order, stored, and their mask bits written as one byte. Bit-identical to the generic loop
// (tests/test_affine_kernel.cpp runs both). Internal header.

#include <cstdint>

#include "ops/cpu/fake_quant_avx2.h"  // RowsDtype

namespace torchquant {
namespace detail {

/// The scalars of one fake_affine_tensor_quant call as ATen's CPU kernels use them, in the
/// compute type acc_t (double for float64 inputs, float otherwise); affine_kernel.cpp says how
/// each is rounded.
template <typename acc_t>
struct AffineScalars {
  acc_t step;  // divisor and factor
  acc_t zero;  // quant_zero
  acc_t lo;    // min_bound
  acc_t hi;    // max_bound
  acc_t min_range;
  acc_t max_range;
};

/// One contiguous input and its output (same dtype), and the packed mask (mask_bits.h) or null.
struct AffineSpan {
  const void* x = nullptr;
  void* y = nullptr;
  uint8_t* bits = nullptr;
  RowsDtype dtype = RowsDtype::kFloat;
  AffineScalars<float> s{};
};

/// Whether affine_avx2 runs here: cpu_isa() at least kAvx2 (AVX2 and F16C) on x86-64.
bool affine_avx2_available();

/// Elements [b, e) of `a`, b a multiple of 8 when a.bits is set.
///
///   AffineSpan a; a.x = x; a.y = y; a.s = scalars;
///   affine_avx2(a, 0, n);
void affine_avx2(const AffineSpan& a, int64_t b, int64_t e);

}  // namespace detail
}  // namespace torchquant
