// Meta kernels: output shapes and dtypes without data, so that the ops trace under torch.compile /
// torch.export and mixed-device calls get torchquant's own error messages.

#include <ATen/Functions.h>
#include <torch/library.h>

#include "ops/affine_common.h"
#include "ops/quant_common.h"

namespace torchquant {
namespace detail {
namespace {

at::Tensor like(const at::Tensor& t, at::ScalarType dtype) {
  return at::empty(t.sizes(), t.options().dtype(dtype).device(at::kMeta));
}

std::tuple<at::Tensor, at::Tensor> tensor_quant_meta(const at::Tensor& x, const at::Tensor& amax,
                                                     int64_t nb, bool uns, bool nr) {
  check_quant_args("torchquant::tensor_quant", x, amax, nb, uns, nr);
  return {like(x, x.scalar_type()), like(amax, x.scalar_type())};
}

at::Tensor fake_tensor_quant_meta(const at::Tensor& x, const at::Tensor& amax, int64_t nb, bool uns,
                                  bool nr) {
  check_quant_args("torchquant::fake_tensor_quant", x, amax, nb, uns, nr);
  return like(x, x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> tensor_quant_with_mask_meta(const at::Tensor& x,
                                                                           const at::Tensor& amax,
                                                                           int64_t nb, bool uns,
                                                                           bool nr) {
  auto [q, scale] = tensor_quant_meta(x, amax, nb, uns, nr);
  return {q, scale, like(x, at::kBool)};
}

std::tuple<at::Tensor, at::Tensor> fake_tensor_quant_with_mask_meta(const at::Tensor& x,
                                                                    const at::Tensor& amax,
                                                                    int64_t nb, bool uns, bool nr) {
  return {fake_tensor_quant_meta(x, amax, nb, uns, nr), like(x, at::kBool)};
}

at::Tensor scaled_e4m3_meta(const at::Tensor& x, const c10::optional<at::Tensor>& amax, int64_t,
                            int64_t) {
  check_floating("torchquant::scaled_e4m3", "inputs", x);
  TORCH_CHECK(!amax.has_value() || amax->device() == x.device(),
              "torchquant::scaled_e4m3: amax is on ",
              amax.has_value() ? amax->device() : x.device(), " but inputs are on ", x.device(),
              "; expected both on the same device");
  return like(x, x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> scaled_e4m3_with_mask_meta(const at::Tensor& x,
                                                              const c10::optional<at::Tensor>& amax,
                                                              int64_t E, int64_t M) {
  return {scaled_e4m3_meta(x, amax, E, M), like(x, at::kBool)};
}

at::Tensor fake_affine_meta(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi,
                            int64_t nb) {
  check_affine_args("torchquant::fake_affine_tensor_quant", x, lo, hi, nb);
  return like(x, x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> fake_affine_with_mask_meta(const at::Tensor& x,
                                                              const at::Tensor& lo,
                                                              const at::Tensor& hi, int64_t nb) {
  return {fake_affine_meta(x, lo, hi, nb), like(x, at::kBool)};
}

at::Tensor ste_backward_meta(const at::Tensor& grad, const at::Tensor&) {
  return like(grad, grad.scalar_type());
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, Meta, m) {
  using namespace torchquant::detail;
  m.impl("tensor_quant", &tensor_quant_meta);
  m.impl("fake_tensor_quant", &fake_tensor_quant_meta);
  m.impl("_tensor_quant_with_mask", &tensor_quant_with_mask_meta);
  m.impl("_fake_tensor_quant_with_mask", &fake_tensor_quant_with_mask_meta);
  m.impl("scaled_e4m3", &scaled_e4m3_meta);
  m.impl("_scaled_e4m3_with_mask", &scaled_e4m3_with_mask_meta);
  m.impl("fake_affine_tensor_quant", &fake_affine_meta);
  m.impl("_fake_affine_tensor_quant_with_mask", &fake_affine_with_mask_meta);
  m.impl("_ste_backward", &ste_backward_meta);
  m.impl("_ste_backward_", [](at::Tensor& grad, const at::Tensor&) -> at::Tensor& { return grad; });
}
