// fake_affine_tensor_quant on devices without their own kernel (CUDA among them): upstream's ATen
// ops in upstream's order (ops/affine_common.h). The CPU has a fused kernel
// (ops/cpu/affine_kernel.cpp) that gives the same bits.

#include <torch/library.h>

#include <tuple>

#include "ops/affine_common.h"

namespace torchquant {
namespace detail {
namespace {

constexpr const char* kFn = "torchquant::fake_affine_tensor_quant";

at::Tensor fake_affine_impl(const at::Tensor& inputs, const at::Tensor& min_range,
                            const at::Tensor& max_range, int64_t num_bits) {
  return fake_affine_composite(inputs,
                               prepare_affine_params(kFn, inputs, min_range, max_range, num_bits));
}

std::tuple<at::Tensor, at::Tensor> fake_affine_with_mask_impl(const at::Tensor& inputs,
                                                              const at::Tensor& min_range,
                                                              const at::Tensor& max_range,
                                                              int64_t num_bits) {
  const AffineParams p = prepare_affine_params(kFn, inputs, min_range, max_range, num_bits);
  return {fake_affine_composite(inputs, p), affine_mask_composite(inputs, p)};
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CompositeExplicitAutograd, m) {
  m.impl("fake_affine_tensor_quant", &torchquant::detail::fake_affine_impl);
  m.impl("_fake_affine_tensor_quant_with_mask", &torchquant::detail::fake_affine_with_mask_impl);
}
