// Public C++ entry points: thin calls through the dispatcher (so autograd and devices apply).

#include "torchquant/tensor_quant.h"

#include "ops/quant_ops.h"

namespace torchquant {

std::tuple<at::Tensor, at::Tensor> tensor_quant(const at::Tensor& inputs, const at::Tensor& amax,
                                                int64_t num_bits, bool is_unsigned,
                                                bool narrow_range) {
  return ops::tensor_quant(inputs, amax, num_bits, is_unsigned, narrow_range);
}

at::Tensor fake_tensor_quant(const at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                             bool is_unsigned, bool narrow_range) {
  return ops::fake_tensor_quant(inputs, amax, num_bits, is_unsigned, narrow_range);
}

at::Tensor& fake_tensor_quant_out(at::Tensor& out, const at::Tensor& inputs, const at::Tensor& amax,
                                  int64_t num_bits, bool is_unsigned, bool narrow_range) {
  return ops::fake_tensor_quant_out(inputs, amax, num_bits, is_unsigned, narrow_range, out);
}

at::Tensor& fake_tensor_quant_(at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                               bool is_unsigned, bool narrow_range) {
  return ops::fake_tensor_quant_(inputs, amax, num_bits, is_unsigned, narrow_range);
}

at::Tensor fake_affine_tensor_quant(const at::Tensor& inputs, const at::Tensor& min_range,
                                    const at::Tensor& max_range, int64_t num_bits) {
  return ops::fake_affine_tensor_quant(inputs, min_range, max_range, num_bits);
}

at::Tensor scaled_e4m3(const at::Tensor& inputs, const c10::optional<at::Tensor>& amax, int64_t E,
                       int64_t M) {
  return ops::scaled_e4m3(inputs, amax, E, M);
}

}  // namespace torchquant
