#include "test_helpers.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>

#include <cmath>
#include <cstdlib>
#include <limits>

namespace torchquant {
namespace testing {

std::string data_dir(const char* name, const char* built_in) {
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? env : built_in;
}

at::Tensor gradient_with_specials(int64_t n, at::ScalarType dtype) {
  at::Tensor grad = at::randn({n}).to(dtype);
  if (n > 3) {
    grad[0] = std::numeric_limits<float>::quiet_NaN();
    grad[1] = -0.0;
    grad[2] = -std::numeric_limits<float>::infinity();
  }
  return grad;
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto int_type = a.element_size() == 8   ? at::kLong
                        : a.element_size() == 4 ? at::kInt
                        : a.element_size() == 2 ? at::kShort
                                                : at::kByte;
  return torch::equal(a.contiguous().view(int_type), b.contiguous().view(int_type));
}

at::Tensor with_threads(int threads, const std::function<at::Tensor()>& fn) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  at::Tensor out = fn();
  at::set_num_threads(before);
  return out;
}

at::Tensor aten_fake_quant_recipe(const at::Tensor& x, const at::Tensor& amax, int64_t num_bits,
                                  bool is_unsigned, bool narrow_range) {
  const double max_bound = std::ldexp(1.0, static_cast<int>(num_bits - 1 + is_unsigned)) - 1.0;
  const double min_bound = is_unsigned ? 0.0 : (narrow_range ? -max_bound : -max_bound - 1.0);
  const at::Tensor scale = at::full_like(amax, max_bound) / amax;
  return at::clamp(at::round(x * scale), min_bound, max_bound) / scale;
}

}  // namespace testing
}  // namespace torchquant
