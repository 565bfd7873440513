// The forward's AVX2 loop (ops/cpu/fake_quant_avx2.h) against the generic loop, which runs under
// a scalar cap (detail::ScopedCpuIsaCap, as TORCHQUANT_CPU_ISA=scalar): the same bits for outputs
// and masks, and the same negative-input error, on values that test every operation of the step
// (NaN with several payloads, infinities, signed zeros, ties, the amax itself, subnormals), in
// float32, float16 and bfloat16, per tensor and per channel rows whose ends fall inside a step,
// tails, streamed and regular stores, odd offsets.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <utility>
#include <vector>

#include "ops/cpu/fake_quant_avx2.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "util/cpu_isa.h"
#include "util/streaming_stores.h"

namespace torchquant {
namespace {

using testing::bit_equal;

// `fn()` on the AVX2 loop (where the CPU has AVX2), then on the generic loop.
template <class Fn>
auto avx2_and_generic(const Fn& fn) {
  auto fast = fn();
  detail::ScopedCpuIsaCap scalar(detail::CpuIsa::kScalar);
  EXPECT_FALSE(detail::quant_rows_avx2_available());
  return std::make_pair(fast, fn());
}

// Gaussian values scaled to `amax`, with the special values sprinkled over them: NaN (both signs),
// infinities, signed zeros, +-amax, a half step (a tie), subnormals, the largest float.
at::Tensor with_specials(at::IntArrayRef sizes, float amax, float step, int64_t seed) {
  torch::manual_seed(seed);
  at::Tensor x = torch::randn(sizes) * amax * 0.7;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {nan,
                            -nan,
                            inf,
                            -inf,
                            0.0f,
                            -0.0f,
                            amax,
                            -amax,
                            2.5f * step,
                            -0.5f * step,
                            1e-40f,
                            -1e-45f,
                            std::numeric_limits<float>::max()};
  auto flat = x.view(-1);
  const int64_t n = flat.numel();
  for (int64_t k = 0; k < 13 && k < n; ++k) flat[(k * 7919) % n] = specials[k];
  return x;
}

// NaNs with other payloads and signs than a conversion makes, quiet and signalling, in `x`'s dtype.
at::Tensor with_nan_payloads(at::Tensor x) {
  x = x.clone();
  const int64_t n = x.numel();
  if (n < 8) return x;
  if (x.scalar_type() == at::kFloat) {
    auto bits = x.view(at::kInt).view(-1);
    const int32_t nans[] = {0x7fc00001, static_cast<int32_t>(0xffc00000), 0x7f800001,
                            static_cast<int32_t>(0xff812345)};
    for (int k = 0; k < 4; ++k) bits[n - 1 - 2 * k] = nans[k];
  } else {
    auto bits = x.view(at::kShort).view(-1);
    const bool half = x.scalar_type() == at::kHalf;
    const uint16_t nans[] = {static_cast<uint16_t>(half ? 0x7e01 : 0x7fc1),
                             static_cast<uint16_t>(half ? 0xfe00 : 0xffc0),
                             static_cast<uint16_t>(half ? 0x7c01 : 0x7f81),
                             static_cast<uint16_t>(half ? 0xfc02 : 0xff82)};
    for (int k = 0; k < 4; ++k) bits[n - 1 - 2 * k] = static_cast<int16_t>(nans[k]);
  }
  return x;
}

void expect_same(const char* what, const std::pair<at::Tensor, at::Tensor>& r) {
  EXPECT_TRUE(bit_equal(r.first, r.second)) << what;
}

// Every op that runs the forward, both ways.
void check_ops(const at::Tensor& x, const at::Tensor& amax, int64_t bits, bool is_unsigned,
               bool narrow) {
  expect_same("fake_tensor_quant", avx2_and_generic([&] {
                return ops::fake_tensor_quant(x, amax, bits, is_unsigned, narrow);
              }));
  expect_same("tensor_quant", avx2_and_generic([&] {
                return std::get<0>(ops::tensor_quant(x, amax, bits, is_unsigned, narrow));
              }));
  const auto masked = avx2_and_generic(
      [&] { return ops::fake_tensor_quant_with_mask(x, amax, bits, is_unsigned, narrow); });
  EXPECT_TRUE(bit_equal(std::get<0>(masked.first), std::get<0>(masked.second)));
  EXPECT_TRUE(torch::equal(std::get<1>(masked.first), std::get<1>(masked.second)));
  expect_same("out at an odd offset", avx2_and_generic([&] {
                at::Tensor storage = torch::full({x.numel() + 1}, 7.0f, x.options());
                at::Tensor view = storage.slice(0, 1).view(x.sizes());
                ops::fake_tensor_quant_out(x, amax, bits, is_unsigned, narrow, view);
                return storage;
              }));
  expect_same("in place", avx2_and_generic([&] {
                at::Tensor y = x.clone();
                ops::fake_tensor_quant_(y, amax, bits, is_unsigned, narrow);
                return y;
              }));
}

TEST(FakeQuantAvx2, RunsWhereTheCpuHasAvx2) {
#if defined(__x86_64__)
  EXPECT_EQ(detail::quant_rows_avx2_available(), detail::cpu_isa() >= detail::CpuIsa::kAvx2);
#else
  EXPECT_FALSE(detail::quant_rows_avx2_available());
#endif
}

TEST(FakeQuantAvx2, PerTensorSameBitsAsTheGenericLoop) {
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    for (bool stream : {false, true}) {
      detail::ScopedStreamingStores streaming(stream);
      for (int64_t n : {1, 7, 8, 9, 63, 64, 65, 4099, 70001}) {
        for (int64_t bits : {4, 8, 16}) {
          for (bool narrow : {true, false}) {
            SCOPED_TRACE(c10::toString(dtype) + std::string(" n=") + std::to_string(n) +
                         " bits=" + std::to_string(bits) + " narrow=" + std::to_string(narrow) +
                         " stream=" + std::to_string(stream));
            // amax 127 with 8 bits: a scale of 1, so the half step is a tie.
            const float amax = bits == 8 ? 127.0f : 3.0f;
            const at::Tensor x = with_specials({n}, amax, 1.0f, n + bits).to(dtype);
            check_ops(with_nan_payloads(x), torch::tensor(amax), bits, false, narrow);
            check_ops(x.abs().nan_to_num(0.0), torch::tensor(amax), bits, true, narrow);
          }
        }
      }
    }
  }
}

// Rows of 64, 67 (an end inside every step) and 1003 elements, a channel with amax 0 (scale 0,
// divisor 1), one thread and two (chunks starting mid-row).
TEST(FakeQuantAvx2, PerChannelRowsSameBitsAsTheGenericLoop) {
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    for (bool stream : {false, true}) {
      detail::ScopedStreamingStores streaming(stream);
      for (int64_t inner : {64, 67, 1003}) {
        for (int threads : {1, 2}) {
          SCOPED_TRACE(c10::toString(dtype) + std::string(" inner=") + std::to_string(inner) +
                       " threads=" + std::to_string(threads) + " stream=" + std::to_string(stream));
          const at::Tensor x =
              with_nan_payloads(with_specials({3, 5, inner}, 2.0f, 2.0f / 127, inner).to(dtype));
          at::Tensor amax = torch::rand({1, 5, 1}) + 0.5;
          amax[0][2][0] = 0.0f;
          testing::with_threads(threads, [&] {
            check_ops(x, amax, 8, false, true);
            check_ops(x.abs().nan_to_num(0.0), amax, 7, true, false);
            return at::Tensor();
          });
        }
      }
    }
  }
}

// Per-channel rows shorter than 64 elements (a repeated pattern of per-element values, also
// shorter than a step) and a general amax layout (values per element), 1 and 2 threads.
TEST(FakeQuantAvx2, RepeatedPatternsSameBitsAsTheGenericLoop) {
  struct Layout {
    std::vector<int64_t> x, amax;
  };
  const Layout layouts[] = {{{3, 5, 7}, {1, 5, 1}},      // rows of 7: a pattern of 35 values
                            {{50, 6}, {1, 6}},           // rows of 1: a pattern of 6 < 8
                            {{2, 3, 300}, {1, 3, 1}},    // rows of 300: the row walk
                            {{4, 5, 33}, {1, 5, 33}},    // general: a value per element
                            {{70, 3, 61}, {1, 3, 61}}};  // general, over several tasks
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    for (bool stream : {false, true}) {
      detail::ScopedStreamingStores streaming(stream);
      for (const auto& layout : layouts) {
        for (int threads : {1, 2}) {
          SCOPED_TRACE(c10::toString(dtype) + std::string(" x ") + c10::str(layout.x) + " amax " +
                       c10::str(layout.amax) + " threads=" + std::to_string(threads) +
                       " stream=" + std::to_string(stream));
          const at::Tensor x =
              with_nan_payloads(with_specials(layout.x, 2.0f, 2.0f / 127, threads).to(dtype));
          at::Tensor amax = torch::rand(layout.amax) + 0.5;
          amax.view(-1)[1] = 0.0f;
          testing::with_threads(threads, [&] {
            check_ops(x, amax, 8, false, true);
            check_ops(x.abs().nan_to_num(0.0), amax, 5, true, false);
            return at::Tensor();
          });
        }
      }
    }
  }
}

// An unsigned quantizer's negative input is found wherever it is: in a whole step, in the tail.
TEST(FakeQuantAvx2, NegativeInputOfUnsignedIsAnErrorAnywhere) {
  for (int64_t at : {0, 40, 69}) {
    at::Tensor x = torch::rand({70});
    x[at] = -0.25f;
    testing::expect_error([&] { ops::fake_tensor_quant(x, torch::tensor(1.0f), 8, true, true); },
                          {"fake_tensor_quant", "negative"});
    at::Tensor rows = torch::rand({2, 3, 67});
    rows.view(-1)[at * 5] = -1.0f;
    testing::expect_error(
        [&] {
          ops::fake_tensor_quant(rows, torch::ones({1, 3, 1}), 8, true, true);
        },
        {"fake_tensor_quant", "negative"});
  }
}

}  // namespace
}  // namespace torchquant
