// fake_tensor_quant on decoded shapes, dtypes, amax (per tensor or per channel), num_bits,
// unsigned and narrow_range. Bad arguments must be c10::Errors. For valid, finite arguments:
//   |fq(x) - clamp(x, lowest level, amax)| <= step / 2   (step = amax / max_bound)
//   fq(fq(x)) == fq(x)                                    (float32, float64, bfloat16)

#include <ATen/ATen.h>
#include <torchquant/tensor_quant.h>

#include <cmath>
#include <vector>

#include "fuzz_common.h"

namespace {

using torchquant::fuzz::Bytes;

bool finite_in(const at::Tensor& t, double lo, double hi) {
  const at::Tensor d = t.to(at::kDouble);
  return d.isfinite().all().item<bool>() && d.abs().ge(lo).all().item<bool>() &&
         d.abs().le(hi).all().item<bool>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const at::ScalarType dtypes[] = {at::kFloat, at::kDouble, at::kBFloat16};
  const at::ScalarType dtype = dtypes[in.range(0, 2)];
  const int64_t dims = in.range(1, 3);
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (int64_t d = 0; d < dims; ++d) {
    shape.push_back(in.range(1, 6));
    numel *= shape.back();
  }
  const bool per_channel = in.flag();
  const int64_t num_bits = in.range(0, 17);  // 0, 1 and 17 are out of range
  const bool is_unsigned = in.flag();
  const bool narrow_range = in.flag();
  std::vector<int64_t> amax_shape(static_cast<size_t>(dims), 1);
  if (per_channel) amax_shape[0] = shape[0];
  std::vector<float> amax_values;
  for (int64_t i = 0; i < (per_channel ? shape[0] : 1); ++i) amax_values.push_back(in.f32());
  std::vector<float> values;
  for (int64_t i = 0; i < numel; ++i) values.push_back(in.f32());

  const at::Tensor x = at::tensor(values).reshape(shape).to(dtype);
  const at::Tensor amax = at::tensor(amax_values).reshape(amax_shape);
  torchquant::fuzz::expect_only_c10_errors([&] {
    const at::Tensor fq =
        torchquant::fake_tensor_quant(x, amax, num_bits, is_unsigned, narrow_range);
    TORCHQUANT_FUZZ_ASSERT(fq.sizes() == x.sizes() && fq.scalar_type() == dtype);
    // Invariants where the arithmetic stays far from overflow and from the zero-amax rule.
    if (!finite_in(x, 0, 1e6) || !finite_in(amax, 1e-3, 1e6)) return;
    const double max_bound = is_unsigned ? std::ldexp(1.0, static_cast<int>(num_bits)) - 1
                                         : std::ldexp(1.0, static_cast<int>(num_bits) - 1) - 1;
    const double min_level = is_unsigned ? 0.0 : (narrow_range ? -max_bound : -max_bound - 1);
    const at::Tensor a = amax.to(at::kDouble);
    const at::Tensor step = a / max_bound;
    const at::Tensor xd = x.to(at::kDouble);
    const at::Tensor clamped = at::maximum(at::minimum(xd, a), step * min_level);
    const at::Tensor err = (fq.to(at::kDouble) - clamped).abs();
    // float32 scale arithmetic (and bfloat16 output rounding) add a little on top of step / 2.
    const double rel = dtype == at::kBFloat16 ? 1.0 / 128 : 1e-5;
    const at::Tensor bound = step * 0.5 * (1 + 1e-5) + xd.abs() * rel + 1e-30;
    TORCHQUANT_FUZZ_ASSERT(err.le(bound).all().item<bool>());
    const at::Tensor twice =
        torchquant::fake_tensor_quant(fq, amax, num_bits, is_unsigned, narrow_range);
    TORCHQUANT_FUZZ_ASSERT(twice.equal(fq));
  });
  return 0;
}
