// Schemas of the torchquant ops (defined once here) and their typed dispatcher calls.

#include "ops/quant_ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace torchquant {
namespace ops {
namespace {

template <typename Signature>
c10::TypedOperatorHandle<Signature> handle(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload).typed<Signature>();
}

using Quant2 = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t,
                                                  bool, bool);
using Quant3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                              int64_t, bool, bool);
using Quant1 = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool, bool);

}  // namespace

std::tuple<at::Tensor, at::Tensor> tensor_quant(const at::Tensor& inputs, const at::Tensor& amax,
                                                int64_t num_bits, bool is_unsigned,
                                                bool narrow_range) {
  static auto op = handle<Quant2>("torchquant::tensor_quant");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range);
}

at::Tensor fake_tensor_quant(const at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                             bool is_unsigned, bool narrow_range) {
  static auto op = handle<Quant1>("torchquant::fake_tensor_quant");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range);
}

at::Tensor& fake_tensor_quant_out(const at::Tensor& inputs, const at::Tensor& amax,
                                  int64_t num_bits, bool is_unsigned, bool narrow_range,
                                  at::Tensor& out) {
  static auto op =
      handle<at::Tensor&(const at::Tensor&, const at::Tensor&, int64_t, bool, bool, at::Tensor&)>(
          "torchquant::fake_tensor_quant", "out");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range, out);
}

at::Tensor& fake_tensor_quant_(at::Tensor& inputs, const at::Tensor& amax, int64_t num_bits,
                               bool is_unsigned, bool narrow_range) {
  static auto op = handle<at::Tensor&(at::Tensor&, const at::Tensor&, int64_t, bool, bool)>(
      "torchquant::fake_tensor_quant_");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> tensor_quant_with_mask(const at::Tensor& inputs,
                                                                      const at::Tensor& amax,
                                                                      int64_t num_bits,
                                                                      bool is_unsigned,
                                                                      bool narrow_range) {
  static auto op = handle<Quant3>("torchquant::_tensor_quant_with_mask");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range);
}

std::tuple<at::Tensor, at::Tensor> fake_tensor_quant_with_mask(const at::Tensor& inputs,
                                                               const at::Tensor& amax,
                                                               int64_t num_bits, bool is_unsigned,
                                                               bool narrow_range) {
  static auto op = handle<Quant2>("torchquant::_fake_tensor_quant_with_mask");
  return op.call(inputs, amax, num_bits, is_unsigned, narrow_range);
}

void fake_tensor_quant_with_mask_out(const at::Tensor& inputs, const at::Tensor& amax,
                                     int64_t num_bits, bool is_unsigned, bool narrow_range,
                                     at::Tensor& out, at::Tensor& mask) {
  static auto op = handle<std::tuple<at::Tensor&, at::Tensor&>(
      const at::Tensor&, const at::Tensor&, int64_t, bool, bool, at::Tensor&, at::Tensor&)>(
      "torchquant::_fake_tensor_quant_with_mask", "out");
  op.call(inputs, amax, num_bits, is_unsigned, narrow_range, out, mask);
}

at::Tensor fake_affine_tensor_quant(const at::Tensor& inputs, const at::Tensor& min_range,
                                    const at::Tensor& max_range, int64_t num_bits) {
  static auto op =
      handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t)>(
          "torchquant::fake_affine_tensor_quant");
  return op.call(inputs, min_range, max_range, num_bits);
}

std::tuple<at::Tensor, at::Tensor> fake_affine_tensor_quant_with_mask(const at::Tensor& inputs,
                                                                      const at::Tensor& min_range,
                                                                      const at::Tensor& max_range,
                                                                      int64_t num_bits) {
  static auto op = handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                             const at::Tensor&, int64_t)>(
      "torchquant::_fake_affine_tensor_quant_with_mask");
  return op.call(inputs, min_range, max_range, num_bits);
}

at::Tensor scaled_e4m3(const at::Tensor& inputs, const c10::optional<at::Tensor>& amax, int64_t E,
                       int64_t M) {
  static auto op =
      handle<at::Tensor(const at::Tensor&, const c10::optional<at::Tensor>&, int64_t, int64_t)>(
          "torchquant::scaled_e4m3");
  return op.call(inputs, amax, E, M);
}

std::tuple<at::Tensor, at::Tensor> scaled_e4m3_with_mask(const at::Tensor& inputs,
                                                         const c10::optional<at::Tensor>& amax,
                                                         int64_t E, int64_t M) {
  static auto op = handle<std::tuple<at::Tensor, at::Tensor>(
      const at::Tensor&, const c10::optional<at::Tensor>&, int64_t, int64_t)>(
      "torchquant::_scaled_e4m3_with_mask");
  return op.call(inputs, amax, E, M);
}

at::Tensor abs_histogram(const at::Tensor& x, double top, int64_t num_bins, bool skip_zeros) {
  static auto op =
      handle<at::Tensor(const at::Tensor&, double, int64_t, bool)>("torchquant::_abs_histogram");
  return op.call(x, top, num_bins, skip_zeros);
}

at::Tensor ste_backward(const at::Tensor& grad, const at::Tensor& mask) {
  static auto op =
      handle<at::Tensor(const at::Tensor&, const at::Tensor&)>("torchquant::_ste_backward");
  return op.call(grad, mask);
}

at::Tensor& ste_backward_(at::Tensor& grad, const at::Tensor& mask) {
  static auto op =
      handle<at::Tensor&(at::Tensor&, const at::Tensor&)>("torchquant::_ste_backward_");
  return op.call(grad, mask);
}

}  // namespace ops
}  // namespace torchquant

TORCH_LIBRARY(torchquant, m) {
  m.def(
      "tensor_quant(Tensor inputs, Tensor amax, int num_bits=8, bool unsigned=False, "
      "bool narrow_range=True) -> (Tensor, Tensor)");
  m.def(
      "fake_tensor_quant(Tensor inputs, Tensor amax, int num_bits=8, bool unsigned=False, "
      "bool narrow_range=True) -> Tensor");
  m.def(
      "fake_tensor_quant.out(Tensor inputs, Tensor amax, int num_bits=8, bool unsigned=False, "
      "bool narrow_range=True, *, Tensor(a!) out) -> Tensor(a!)");
  m.def(
      "fake_tensor_quant_(Tensor(a!) inputs, Tensor amax, int num_bits=8, bool unsigned=False, "
      "bool narrow_range=True) -> Tensor(a!)");
  m.def(
      "_tensor_quant_with_mask(Tensor inputs, Tensor amax, int num_bits, bool unsigned, "
      "bool narrow_range) -> (Tensor, Tensor, Tensor)");
  m.def(
      "_fake_tensor_quant_with_mask(Tensor inputs, Tensor amax, int num_bits, bool unsigned, "
      "bool narrow_range) -> (Tensor, Tensor)");
  m.def(
      "_fake_tensor_quant_with_mask.out(Tensor inputs, Tensor amax, int num_bits, bool unsigned, "
      "bool narrow_range, *, Tensor(a!) out, Tensor(b!) mask) -> (Tensor(a!), Tensor(b!))");
  m.def(
      "fake_affine_tensor_quant(Tensor inputs, Tensor min_range, Tensor max_range, "
      "int num_bits=8) -> Tensor");
  m.def(
      "_fake_affine_tensor_quant_with_mask(Tensor inputs, Tensor min_range, Tensor max_range, "
      "int num_bits) -> (Tensor, Tensor)");
  m.def("scaled_e4m3(Tensor inputs, Tensor? amax=None, int E=4, int M=3) -> Tensor");
  m.def("_scaled_e4m3_with_mask(Tensor inputs, Tensor? amax, int E, int M) -> (Tensor, Tensor)");
  m.def("_ste_backward(Tensor grad, Tensor mask) -> Tensor");
  m.def("_ste_backward_(Tensor(a!) grad, Tensor mask) -> Tensor(a!)");
  m.def("_abs_histogram(Tensor x, float top, int num_bins, bool skip_zeros) -> Tensor");
}
