// fake_affine_tensor_quant's fused CPU kernel against upstream's composition of ATen ops
// (ops/affine_common.h) bit for bit: every pair of input and range dtypes, num_bits 2..16, ties,
// saturation, NaN, Inf and signed zeros, layouts and threads, through the AVX2 loop and the
// generic one (detail::ScopedCpuIsaCap); its packed mask and gradient; the degenerate ranges it
// rejects.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "ops/affine_common.h"
#include "ops/cpu/mask_bits.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::bit_equal;
using testing::expect_error;

constexpr const char* kFn = "torchquant::fake_affine_tensor_quant";

// Gaussian values spread over twice the range, the range's ends, every tie (k + 1/2) * step + min
// for k in [-2, 2^n + 1] (capped), and NaN, +-Inf, +-0.
at::Tensor test_values(double lo, double hi, int64_t num_bits, at::ScalarType dtype) {
  const double step = (hi - lo) / (std::ldexp(1.0, static_cast<int>(num_bits)) - 1.0);
  std::vector<double> v = {std::nan(""), -std::nan(""), INFINITY, -INFINITY, 0.0, -0.0, lo, hi};
  for (int64_t k = -2; k < std::min<int64_t>(4096, (int64_t{1} << num_bits) + 2); ++k) {
    v.push_back(lo + (static_cast<double>(k) + 0.5) * step);
  }
  at::Tensor ticks = torch::tensor(v, torch::kDouble);
  at::Tensor noise = torch::randn({70001}, torch::kDouble) * (hi - lo) + (lo + hi) / 2;
  return torch::cat({ticks, noise}).to(dtype);
}

at::Tensor unpacked(const at::Tensor& bits, int64_t n) {
  at::Tensor out = torch::empty({n}, torch::kBool);
  detail::unpack_mask_bits(bits.data_ptr<uint8_t>(), n, out.data_ptr<bool>());
  return out;
}

// The same bits, except that a NaN of a 16-bit type only has to be NaN in `want` and must have
// c10's canonical bits (sign | 0x7e00 for float16, sign | 0x7fc0 for bfloat16) in `got`, as
// fake_tensor_quant's: ATen's vectorised conversions keep float16 payloads and write 0xffff for
// bfloat16, its scalar tail does neither, so the composition's NaN bits depend on the position.
bool same_bits(const at::Tensor& got, const at::Tensor& want) {
  if (got.element_size() != 2) return bit_equal(got, want);
  const at::Tensor nan = torch::isnan(want);
  if (!torch::equal(torch::isnan(got), nan)) return false;
  const int quiet = got.scalar_type() == at::kHalf ? 0x7e00 : 0x7fc0;
  const at::Tensor bits = got.view(at::kShort).to(at::kInt).bitwise_and(0x7fff);
  if (!torch::equal(bits.masked_select(nan),
                    torch::full({nan.sum().item<int64_t>()}, quiet, torch::kInt))) {
    return false;
  }
  return bit_equal(got.masked_fill(nan, 0), want.masked_fill(nan, 0));
}

// The kernel's output and mask against the composition's for one call.
void expect_matches_composition(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi,
                                int64_t num_bits) {
  const detail::AffineParams p = detail::prepare_affine_params(kFn, x, lo, hi, num_bits);
  const at::Tensor want = detail::fake_affine_composite(x, p);
  const at::Tensor want_mask = detail::affine_mask_composite(x, p).reshape({-1});
  auto [out, bits] = ops::fake_affine_tensor_quant_with_mask(x, lo, hi, num_bits);
  const std::string what =
      std::string(c10::toString(x.scalar_type())) + " in, range " +
      c10::toString(lo.scalar_type()) + " [" + std::to_string(lo.item<double>()) + ", " +
      std::to_string(hi.item<double>()) + "], " + std::to_string(num_bits) + " bits";
  EXPECT_TRUE(same_bits(out, want)) << what;
  EXPECT_TRUE(same_bits(fake_affine_tensor_quant(x, lo, hi, num_bits), want)) << what;
  ASSERT_EQ(bits.scalar_type(), at::kByte);
  EXPECT_TRUE(torch::equal(unpacked(bits, x.numel()), want_mask)) << what;
}

TEST(AffineKernel, EqualsTheAtenCompositionForEveryDtypePair) {
  torch::manual_seed(7);
  const std::vector<std::pair<double, double>> ranges = {
      {-1.3, 2.7}, {0.11, 0.93}, {-1000.1, -3.3}, {-0.02, 500.0}, {-7.0, 7.0}};
  const std::vector<at::ScalarType> dtypes = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16};
  for (auto isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    SCOPED_TRACE("isa " + std::to_string(static_cast<int>(isa)));
    for (auto in : dtypes) {
      for (auto range : dtypes) {
        for (int64_t nb : {2, 4, 8, 9, 10, 12, 13, 16}) {
          for (auto [l, h] : ranges) {
            // -1000.1 / step overflows float16 at 16 bits
            // (RejectsRangesWithoutAFiniteStepAndZeroPoint).
            if (range == at::kHalf && nb == 16 && h < 0) continue;
            const at::Tensor lo = torch::tensor(l, torch::kDouble).to(range);
            const at::Tensor hi = torch::tensor(h, torch::kDouble).to(range);
            expect_matches_composition(test_values(l, h, nb, in), lo, hi, nb);
          }
        }
      }
    }
  }
}

TEST(AffineKernel, NanPayloadsAndExtremes) {
  const float nans[] = {std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::signaling_NaN(),
                        -std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> v(nans, nans + 3);
  for (float f : {std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
                  std::numeric_limits<float>::denorm_min(), 65504.0f, -65504.0f, 1e30f}) {
    v.push_back(f);
  }
  for (auto isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
      // Repeated past one vector step so that the vectorised loop sees them, not only the tail.
      const at::Tensor x = torch::tensor(v).repeat({9}).to(dtype);
      expect_matches_composition(x, torch::tensor(-2.5f), torch::tensor(6.0f), 8);
      expect_matches_composition(x, torch::tensor(-3e4f), torch::tensor(3e4f), 16);
    }
  }
}

TEST(AffineKernel, LayoutsAndThreadsGiveTheSameBits) {
  torch::manual_seed(3);
  const at::Tensor lo = torch::tensor(-0.7f), hi = torch::tensor(1.9f);
  for (auto dtype : {at::kFloat, at::kHalf}) {
    const at::Tensor base = (torch::randn({64, 3, 33, 35}) * 2).to(dtype);
    const at::Tensor want = fake_affine_tensor_quant(base, lo, hi, 8);
    // Non-contiguous views: a transpose, a channels-last copy, a strided slice.
    const at::Tensor t = base.transpose(1, 3);
    EXPECT_TRUE(
        bit_equal(fake_affine_tensor_quant(t, lo, hi, 8), want.transpose(1, 3).contiguous()));
    const at::Tensor cl = base.contiguous(at::MemoryFormat::ChannelsLast);
    EXPECT_TRUE(bit_equal(fake_affine_tensor_quant(cl, lo, hi, 8), want));
    const at::Tensor s = base.slice(3, 0, 35, 2);
    EXPECT_TRUE(
        bit_equal(fake_affine_tensor_quant(s, lo, hi, 8), want.slice(3, 0, 35, 2).contiguous()));
    for (int threads : {1, 2}) {
      EXPECT_TRUE(bit_equal(
          testing::with_threads(threads, [&] { return fake_affine_tensor_quant(base, lo, hi, 8); }),
          want));
    }
  }
  const at::Tensor empty = torch::empty({0, 4});
  EXPECT_EQ(fake_affine_tensor_quant(empty, lo, hi, 8).sizes(), empty.sizes());
  // A range of shape [1] is read as 0-d: the output keeps the input's shape and dtype (upstream's
  // ops would broadcast a 0-d input to [1] and promote float16 to the range's float32).
  const at::Tensor scalar = torch::tensor(0.5f).to(at::kHalf);
  const at::Tensor y = fake_affine_tensor_quant(scalar, lo.reshape({1}), hi.reshape({1}), 8);
  EXPECT_EQ(y.dim(), 0);
  EXPECT_EQ(y.scalar_type(), at::kHalf);
}

TEST(AffineKernel, GradientPassesInsideTheRangeThroughAPackedMask) {
  torch::manual_seed(5);
  const at::Tensor lo = torch::tensor(-1.0f), hi = torch::tensor(2.0f);
  at::Tensor x = torch::randn({1000}) * 2;
  x[0] = -1.0f;  // both ends pass
  x[1] = 2.0f;
  auto [out, bits] = ops::fake_affine_tensor_quant_with_mask(x, lo, hi, 8);
  EXPECT_EQ(bits.sizes(), at::IntArrayRef({detail::packed_mask_bytes(1000)}));
  const at::Tensor inside = x.ge(lo).logical_and(x.le(hi));
  EXPECT_TRUE(torch::equal(unpacked(bits, 1000), inside));
  x.requires_grad_(true);
  const at::Tensor g = torch::randn({1000});
  fake_affine_tensor_quant(x, lo, hi, 8).backward(g);
  EXPECT_TRUE(torch::equal(x.grad(), torch::where(inside, g, torch::zeros({}))));
  EXPECT_EQ(inside.sum().item<int64_t>() < 1000, true);
}

TEST(AffineKernel, RejectsRangesWithoutAFiniteStepAndZeroPoint) {
  const at::Tensor x = torch::rand({8}).to(at::kHalf);
  // (1.7e-3 - 1e-3) / 65535 underflows to 0 in float16; the composition gave NaN everywhere.
  expect_error(
      [&] {
        fake_affine_tensor_quant(x, torch::tensor(1e-3).to(at::kHalf),
                                 torch::tensor(1.7e-3).to(at::kHalf), 16);
      },
      {kFn, "give the step 0", "in Half with num_bits=16",
       "expected a positive finite step and a finite zero point"});
  // 60000 - (-60000) overflows float16.
  expect_error(
      [&] {
        fake_affine_tensor_quant(x, torch::tensor(-6e4).to(at::kHalf),
                                 torch::tensor(6e4).to(at::kHalf), 8);
      },
      {kFn, "give the step inf", "expected a positive finite step"});
  // -1000.1 / step overflows float16 at 16 bits: the zero point is -Inf.
  expect_error(
      [&] {
        fake_affine_tensor_quant(x, torch::tensor(-1000.1).to(at::kHalf),
                                 torch::tensor(-3.3).to(at::kHalf), 16);
      },
      {kFn, "the zero point -inf", "expected a positive finite step and a finite zero point"});
  // A float32 range far from 0 whose zero point (255128) float16 inputs cannot hold.
  expect_error([&] { fake_affine_tensor_quant(x, torch::tensor(1000.0f), torch::tensor(1001.0f)); },
               {kFn, "the zero point 255128", "overflows Half inputs",
                "expected a range whose zero point the inputs' dtype holds"});
  EXPECT_EQ(
      fake_affine_tensor_quant(x.to(at::kFloat), torch::tensor(1000.0f), torch::tensor(1001.0f))
          .numel(),
      8);
  // The same range in float32 with float32 inputs is fine.
  EXPECT_EQ(
      fake_affine_tensor_quant(x.to(at::kFloat), torch::tensor(1e-3f), torch::tensor(1.7e-3f), 16)
          .numel(),
      8);
}

TEST(AffineKernel, MetaTensorsGiveShapesWithoutValues) {
  const at::Tensor x = torch::empty({2, 3}, torch::TensorOptions().device(at::kMeta));
  const at::Tensor lo = torch::empty({}, x.options()), hi = torch::empty({}, x.options());
  const at::Tensor y = fake_affine_tensor_quant(x, lo, hi, 8);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(y.is_meta());
  expect_error([&] { fake_affine_tensor_quant(x, lo, hi, 17); },
               {kFn, "num_bits must be in [2, 16], got 17"});
}

}  // namespace
}  // namespace torchquant
