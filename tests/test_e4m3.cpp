// scaled_e4m3 on the CPU: every E4M3 code, every midpoint (ties to even), saturation, subnormals,
// signed zeros, NaN and Inf, scaling, gradients, and the comparison with torch's Float8_e4m3fn.

#include <c10/util/Float8_e4m3fn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/e4m3.h"
#include "ops/cpu/mask_bits.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::expect_error;

// The finite non-negative E4M3 values in increasing order (codes 0..126; 127 is NaN).
std::vector<float> e4m3_values() {
  std::vector<float> v;
  for (uint8_t code = 0; code < 127; ++code) {
    v.push_back(static_cast<float>(c10::Float8_e4m3fn(code, c10::Float8_e4m3fn::from_bits())));
  }
  return v;
}

float e4m3(float x) { return scaled_e4m3(torch::tensor({x})).item<float>(); }

TEST(ScaledE4M3, EveryCodeIsAFixedPoint) {
  const auto values = e4m3_values();
  ASSERT_EQ(values.back(), 448.0f);
  ASSERT_EQ(values[1], std::ldexp(1.0f, -9));  // smallest subnormal
  for (float v : values) {
    EXPECT_EQ(e4m3(v), v);
    EXPECT_EQ(e4m3(-v), -v);
  }
}

TEST(ScaledE4M3, MidpointsRoundToEvenAndNeighboursToNearest) {
  const auto values = e4m3_values();
  for (size_t i = 0; i + 1 < values.size(); ++i) {
    const float a = values[i], b = values[i + 1];
    const float mid = (a + b) / 2;              // exact in float32
    const float even = (i % 2 == 0) ? a : b;    // codes i and i+1: the even code has mantissa LSB 0
    if (mid < std::ldexp(1.0f, -24)) continue;  // below upstream's zero threshold
    EXPECT_EQ(e4m3(mid), even) << "between " << a << " and " << b;
    EXPECT_EQ(e4m3(-mid), -even);
    EXPECT_EQ(e4m3(std::nextafter(mid, 0.0f)), a);
    EXPECT_EQ(e4m3(std::nextafter(mid, 1e9f)), b);
  }
}

TEST(ScaledE4M3, SaturatesAndKeepsSpecials) {
  EXPECT_EQ(e4m3(449.0f), 448.0f);
  EXPECT_EQ(e4m3(464.0f), 448.0f);
  EXPECT_EQ(e4m3(1e6f), 448.0f);
  EXPECT_EQ(e4m3(-1e6f), -448.0f);
  EXPECT_EQ(e4m3(INFINITY), 448.0f);
  EXPECT_EQ(e4m3(-INFINITY), -448.0f);
  EXPECT_TRUE(std::isnan(e4m3(NAN)));
  EXPECT_EQ(e4m3(0.0f), 0.0f);
  EXPECT_FALSE(std::signbit(e4m3(-0.0f)));       // |x| < 2^-24 is set to +0, as upstream
  EXPECT_EQ(e4m3(std::ldexp(1.0f, -10)), 0.0f);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(e4m3(std::ldexp(3.0f, -11)), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3(std::ldexp(1.0f, -25)), 0.0f);  // below 2^-24: zeroed as upstream
}

// The CPU kernel's branch-free rounding (e4m3_round_float) against the reference (frexp,
// nearbyint) on every 127th float bit pattern: every sign and exponent, subnormals, Inf, NaN
// payloads; and on every float within 16 patterns of each E4M3 value and midpoint.
TEST(ScaledE4M3, BranchFreeRoundingEqualsTheReference) {
  const auto same = [](float v) {
    const float want = detail::e4m3_round(v), got = detail::e4m3_round_float(v);
    return std::memcmp(&want, &got, sizeof(float)) == 0;
  };
  int64_t checked = 0;
  for (uint64_t b = 0; b <= 0xffffffffu; b += 127) {
    const auto bits = static_cast<uint32_t>(b);
    float v = 0;
    std::memcpy(&v, &bits, sizeof(v));
    ASSERT_TRUE(same(v)) << "bits 0x" << std::hex << bits;
    ++checked;
  }
  EXPECT_GT(checked, int64_t{33000000});
  const auto values = e4m3_values();
  for (size_t i = 0; i < values.size(); ++i) {
    const float points[] = {values[i],
                            i + 1 < values.size() ? (values[i] + values[i + 1]) / 2 : 464.0f};
    for (float p : points) {
      float v = p;
      for (int k = 0; k < 16; ++k) v = std::nextafter(v, 0.0f);
      for (int k = 0; k < 33; ++k, v = std::nextafter(v, 1e9f)) {
        ASSERT_TRUE(same(v)) << v;
        ASSERT_TRUE(same(-v)) << -v;
      }
    }
  }
}

// The straight-through mask on the CPU is packed bits (1/8 of a bool mask), |x| <= amax, over
// several of the kernel's blocks and a partial last byte, with 1 and 2 threads and every dtype.
TEST(ScaledE4M3, MaskIsPackedBitsOnTheCpu) {
  torch::manual_seed(5);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (int64_t n : {1, 13, 4096, 20003}) {
      const at::Tensor x = (torch::randn({n}) * 3).to(dtype);
      const at::Tensor amax = torch::tensor(2.5f);
      const at::Tensor want = x.abs().le(amax);
      for (int threads : {1, 2}) {
        testing::with_threads(threads, [&] {
          const auto [out, mask] = ops::scaled_e4m3_with_mask(x, amax, 4, 3);
          EXPECT_EQ(mask.scalar_type(), at::kByte);
          EXPECT_EQ(mask.numel(), detail::packed_mask_bytes(n));
          if (mask.numel() != detail::packed_mask_bytes(n)) return at::Tensor();
          EXPECT_TRUE(torch::equal(out, ops::scaled_e4m3(x, amax, 4, 3)));
          at::Tensor unpacked = torch::empty({n}, torch::kBool);
          detail::unpack_mask_bits(mask.data_ptr<uint8_t>(), n, unpacked.data_ptr<bool>());
          EXPECT_TRUE(torch::equal(unpacked, want)) << dtype << " n=" << n;
          if (n % 8 != 0) {  // unused high bits of the last byte are 0
            EXPECT_EQ(mask[-1].item<uint8_t>() >> (n % 8), 0);
          }
          return at::Tensor();
        });
      }
    }
  }
}

TEST(ScaledE4M3, AgreesWithTorchFloat8WithinRangeAndDiffersAboveIt) {
  const at::Tensor x = torch::linspace(-448, 448, 200001);
  const at::Tensor torch_cast = x.to(at::kFloat8_e4m3fn).to(at::kFloat);
  EXPECT_TRUE(torch::equal(scaled_e4m3(x), torch_cast));
  // torch's cast does not saturate: values past the last rounding boundary become NaN.
  const at::Tensor big = torch::tensor({500.0f, 1000.0f});
  EXPECT_TRUE(big.to(at::kFloat8_e4m3fn).to(at::kFloat).isnan().all().item<bool>());
  EXPECT_TRUE(torch::equal(scaled_e4m3(big), torch::tensor({448.0f, 448.0f})));
}

TEST(ScaledE4M3, ScalesByAmaxAndPassesGradientInsideIt) {
  const at::Tensor x = torch::tensor({-3.0f, 0.3f, 1.0f, 2.5f}).requires_grad_(true);
  const at::Tensor amax = torch::tensor(2.0f);
  const at::Tensor y = scaled_e4m3(x, amax);
  const float scale = 448.0f / 2.0f;
  const at::Tensor expected = scaled_e4m3(x.detach() * scale) / scale;
  EXPECT_TRUE(torch::equal(y.detach(), expected));
  EXPECT_EQ(y[0].item<float>(), -2.0f);  // saturates at amax
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.f, 1.f, 1.f, 0.f})));
}

TEST(ScaledE4M3, DtypesAndErrors) {
  const at::Tensor x = torch::randn({100});
  EXPECT_TRUE(torch::equal(scaled_e4m3(x.to(at::kDouble)).to(at::kFloat), scaled_e4m3(x)));
  EXPECT_EQ(scaled_e4m3(x.to(at::kHalf)).scalar_type(), at::kHalf);
  EXPECT_TRUE(scaled_e4m3(x, torch::tensor(0.0f)).eq(0).all().item<bool>());
  expect_error([&] { scaled_e4m3(x, torch::tensor(1.0f), 5, 2); },
               {"torchquant::scaled_e4m3", "only the E4M3 format", "E=5, M=2"});
  expect_error(
      [&] {
        scaled_e4m3(x.reshape({10, 10}), torch::ones({10, 1}));
      },
      {"torchquant::scaled_e4m3", "per-tensor scaling only", "[10, 1]"});
  expect_error([&] { scaled_e4m3(x, torch::tensor(-1.0f)); }, {"amax must be non-negative"});
}

}  // namespace
}  // namespace torchquant
