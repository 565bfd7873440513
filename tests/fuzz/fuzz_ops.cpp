// fake_tensor_quant (and its _out and in-place forms) on decoded shapes (empty ones included),
// dtypes, amax layouts (per tensor, per channel on any axis, one per element, or a shape that does
// not broadcast), amax dtypes, num_bits, unsigned and narrow_range, with any float bits as values.
//   - The arguments are valid exactly when the call succeeds; invalid ones are c10::Errors, and an
//     in-place call that fails leaves its tensor as it was.
//   - The three forms give the same bits.
//   - For finite inputs in range: |fq(x) - clamp(x, lowest level, amax)| <= step / 2 (+ the
//     dtype's grid precision), step = amax / max_bound; fq(fq(x)) == fq(x) (float16 only while
//     max_bound <= 511, and within a step beyond: docs/numerics.md).

#include <ATen/ATen.h>
#include <torchquant/tensor_quant.h>

#include <cmath>
#include <vector>

#include "../grid_eps.h"
#include "fuzz_common.h"

namespace {

using torchquant::fuzz::Bytes;

/// Same bits (NaN and -0.0 included).
bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto int_type = a.element_size() == 8   ? at::kLong
                        : a.element_size() == 4 ? at::kInt
                                                : at::kShort;
  return a.contiguous().view(int_type).equal(b.contiguous().view(int_type));
}

/// Every value finite with a magnitude in [lo, hi].
bool finite_in(const at::Tensor& t, double lo, double hi) {
  const at::Tensor d = t.to(at::kDouble);
  return d.isfinite().all().item<bool>() && d.abs().ge(lo).all().item<bool>() &&
         d.abs().le(hi).all().item<bool>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const at::ScalarType dtypes[] = {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf};
  const at::ScalarType dtype = dtypes[in.range(0, 3)];
  const int64_t dims = in.range(1, 3);
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < dims; ++d) {
    const uint8_t b = in.u8();
    shape.push_back(b == 0xff ? 0 : 1 + b % 6);  // 255: an empty dim
  }
  // amax layout: 0 per tensor (0-d or all ones), 1 per channel, 2 one per element (the general
  // path when two dims exceed 1), 3 a shape that does not broadcast.
  const int64_t layout = in.range(0, 3);
  const int64_t axis = in.range(0, dims - 1);
  std::vector<int64_t> amax_shape(static_cast<size_t>(dims), 1);
  if (layout == 0 && in.flag()) amax_shape.clear();
  if (layout == 1) amax_shape[static_cast<size_t>(axis)] = shape[static_cast<size_t>(axis)];
  if (layout == 2) amax_shape = shape;
  if (layout == 3) amax_shape[static_cast<size_t>(axis)] = shape[static_cast<size_t>(axis)] + 2;
  const int64_t num_bits = in.range(0, 17);  // 0, 17 and 1 (signed) are out of range
  const bool is_unsigned = in.flag();
  const bool narrow_range = in.flag();
  const bool amax_in_dtype = in.flag();  // amax in the input's dtype instead of float32
  int64_t amax_numel = 1, numel = 1;
  for (int64_t s : amax_shape) amax_numel *= s;
  for (int64_t s : shape) numel *= s;
  std::vector<float> amax_values, values;
  for (int64_t i = 0; i < amax_numel; ++i) amax_values.push_back(in.f32());
  for (int64_t i = 0; i < numel; ++i) values.push_back(in.f32());

  const at::Tensor x = at::tensor(values).reshape(shape).to(dtype);
  at::Tensor amax = at::tensor(amax_values).reshape(amax_shape);
  if (amax_in_dtype) amax = amax.to(dtype);

  // What the library must accept (docs/bad_inputs.md): num_bits in [1 unsigned / 2 signed, 16], a
  // non-empty amax that broadcasts without changing the output shape, with finite non-negative
  // values, and no negative input with unsigned.
  const at::Tensor amax_d = amax.to(at::kDouble);
  const bool valid = num_bits >= (is_unsigned ? 1 : 2) && num_bits <= 16 && layout != 3 &&
                     amax_numel > 0 && amax_d.isfinite().all().item<bool>() &&
                     amax_d.ge(0).all().item<bool>() &&
                     !(is_unsigned && x.lt(0).any().item<bool>());

  at::Tensor fq;
  try {
    fq = torchquant::fake_tensor_quant(x, amax, num_bits, is_unsigned, narrow_range);
  } catch (const c10::Error&) {
    TORCHQUANT_FUZZ_ASSERT(!valid);  // a valid call refused
    at::Tensor inplace = x.clone();
    bool threw = false;
    try {
      torchquant::fake_tensor_quant_(inplace, amax, num_bits, is_unsigned, narrow_range);
    } catch (const c10::Error&) {
      threw = true;
    }
    TORCHQUANT_FUZZ_ASSERT(threw && bit_equal(inplace, x));  // refused, and nothing written
    return 0;
  }
  TORCHQUANT_FUZZ_ASSERT(valid);  // an invalid call accepted
  TORCHQUANT_FUZZ_ASSERT(fq.sizes() == x.sizes() && fq.scalar_type() == dtype);

  // The _out and in-place forms compute the same bits.
  at::Tensor out = at::empty_like(x);
  torchquant::fake_tensor_quant_out(out, x, amax, num_bits, is_unsigned, narrow_range);
  TORCHQUANT_FUZZ_ASSERT(bit_equal(out, fq));
  at::Tensor inplace = x.clone();
  torchquant::fake_tensor_quant_(inplace, amax, num_bits, is_unsigned, narrow_range);
  TORCHQUANT_FUZZ_ASSERT(bit_equal(inplace, fq));

  // The numeric invariants, away from overflow and from the zero-amax rule. float16 divides by
  // scale.half(): max_bound / amax must stay below 65504, and 16-bit unsigned levels above 65504
  // do not fit (both as upstream, docs/numerics.md).
  const double max_bound = std::ldexp(1.0, static_cast<int>(num_bits - 1 + is_unsigned)) - 1.0;
  const double min_amax = dtype == at::kHalf ? max_bound / 65000.0 : 1e-3;
  if (dtype == at::kHalf && max_bound > 65504) return 0;
  if (!finite_in(x, 0, 1e6) || !finite_in(amax, min_amax, 1e6)) return 0;
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor step = amax_d / max_bound;
  const at::Tensor lowest = is_unsigned    ? at::zeros_like(amax_d)
                            : narrow_range ? -amax_d
                                           : -amax_d - step;
  const at::Tensor err = (fq.to(at::kDouble) - at::maximum(at::minimum(xd, amax_d), lowest)).abs();
  const double eps = torchquant::testing::grid_eps(dtype);
  TORCHQUANT_FUZZ_ASSERT(err.le(step / 2 + amax_d * (4 * eps)).all().item<bool>());

  const at::Tensor twice =
      torchquant::fake_tensor_quant(fq, amax, num_bits, is_unsigned, narrow_range);
  if (dtype != at::kHalf || max_bound <= 511) {
    TORCHQUANT_FUZZ_ASSERT(twice.equal(fq));
  } else {
    const at::Tensor moved = (twice.to(at::kDouble) - fq.to(at::kDouble)).abs();
    TORCHQUANT_FUZZ_ASSERT(moved.le(step + amax_d * (4 * eps)).all().item<bool>());
  }
  return 0;
}
