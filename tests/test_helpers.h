#pragma once
// Helpers shared by the unit tests.

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "util/cpu_isa.h"

namespace torchquant {
namespace testing {

/// Expects `fn` to throw a c10::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& fn,
                         std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing \"" << *parts.begin() << "\"";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const auto& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    }
  }
}

/// The instruction sets this CPU runs, narrowest first: each as a detail::ScopedCpuIsaCap, so that
/// every version of a hand-dispatched kernel is checked on one machine.
inline std::vector<detail::CpuIsa> runnable_isas() {
  std::vector<detail::CpuIsa> isas;
  for (auto isa : {detail::CpuIsa::kScalar, detail::CpuIsa::kAvx2, detail::CpuIsa::kAvx512}) {
    if (isa <= detail::supported_cpu_isa()) isas.push_back(isa);
  }
  return isas;
}

/// A data folder of the tests: the environment variable `name` where it is set (a copy of the
/// build run elsewhere, e.g. scripts/device-check.sh on a GPU machine), else `built_in` (the path
/// CMake compiled in).
std::string data_dir(const char* name, const char* built_in);

/// Same dtype, shape and bits (NaN payloads and -0.0 included).
bool bit_equal(const at::Tensor& a, const at::Tensor& b);

/// A gradient for the straight-through backward's tests: n gaussian values of `dtype`, the first
/// three NaN, -0 and -Inf where n > 3 (bits a set mask bit must keep).
at::Tensor gradient_with_specials(int64_t n, at::ScalarType dtype);

/// Runs `fn` with the intra-op thread pool set to `threads`, restoring it afterwards.
at::Tensor with_threads(int threads, const std::function<at::Tensor()>& fn);

/// pytorch_quantization's CPU recipe as separate ATen ops (scale = max_bound / amax as a tensor
/// division, clamp(round(x * scale)), / scale), the baseline of tests and benchmarks.
at::Tensor aten_fake_quant_recipe(const at::Tensor& x, const at::Tensor& amax, int64_t num_bits,
                                  bool is_unsigned, bool narrow_range);

}  // namespace testing
}  // namespace torchquant
