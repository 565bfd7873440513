// Streaming stores (util/streaming_stores.h): the copy itself at every alignment, and the
// quantization forward and the straight-through backward writing the same bits with and without
// them (forced on for small tensors; by default only outputs larger than the last-level cache
// are streamed).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/cpu/mask_bits.h"
#include "ops/quant_ops.h"
#include "test_helpers.h"
#include "util/streaming_stores.h"

namespace torchquant {
namespace {

using testing::bit_equal;

// Both versions (16-byte stores; 32-byte ones where the CPU has AVX2), every offset of the
// destination within their alignment, lengths around their steps.
TEST(StreamingStores, CopyEqualsMemcpyAtEveryAlignment) {
  std::vector<unsigned char> src(4200), dst(4200 + 32), want(4200 + 32);
  std::iota(src.begin(), src.end(), 0);
  for (auto isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    for (int64_t offset = 0; offset < 32; ++offset) {
      for (int64_t bytes : {0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 4096, 4200}) {
        std::fill(dst.begin(), dst.end(), 0xee);
        want = dst;
        std::memcpy(want.data() + offset, src.data(), static_cast<size_t>(bytes));
        detail::stream_copy(src.data(), dst.data() + offset, bytes);
        detail::stream_fence();
        ASSERT_EQ(dst, want) << "isa " << static_cast<int>(isa) << ", offset " << offset << ", "
                             << bytes << " bytes";
      }
    }
  }
}

TEST(StreamingStores, ChosenBySizeUnlessForced) {
  EXPECT_FALSE(detail::use_streaming_stores(4096));
#if defined(__x86_64__)
  EXPECT_TRUE(detail::use_streaming_stores(int64_t{1} << 40));
#endif
  {
    detail::ScopedStreamingStores off(false);
    EXPECT_FALSE(detail::use_streaming_stores(int64_t{1} << 40));
    {
      detail::ScopedStreamingStores on(true);
      EXPECT_TRUE(detail::use_streaming_stores(1));
    }
    EXPECT_FALSE(detail::use_streaming_stores(int64_t{1} << 40));
  }
  EXPECT_FALSE(detail::use_streaming_stores(4096));
}

TEST(StreamingStores, EnvironmentSettingIsZeroOrOne) {
  EXPECT_EQ(detail::parse_streaming_stores_setting(nullptr), -1);
  EXPECT_EQ(detail::parse_streaming_stores_setting(""), -1);
  EXPECT_EQ(detail::parse_streaming_stores_setting("0"), 0);
  EXPECT_EQ(detail::parse_streaming_stores_setting("1"), 1);
  testing::expect_error([] { detail::parse_streaming_stores_setting("yes"); },
                        {"TORCHQUANT_STREAMING_STORES", "expected 0 (never) or 1 (always)", "yes"});
}

// `fn()` with streaming stores forced on, and off.
template <class Fn>
auto both_ways(const Fn& fn) {
  detail::ScopedStreamingStores on(true);
  auto streamed = fn();
  detail::ScopedStreamingStores off(false);
  return std::make_pair(streamed, fn());
}

// Every dtype, per tensor and per channel (long rows and short periodic ones), lengths around the
// 4 KiB chunks, outputs fresh, preallocated at an odd offset (streamed around an unaligned head),
// and in place; the mask's bits too.
TEST(StreamingStores, ForwardWritesTheSameBits) {
  torch::manual_seed(31);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{70}}) {
      for (int64_t inner : {int64_t{1}, int64_t{5}, int64_t{1000}, int64_t{4099}}) {
        SCOPED_TRACE(c10::toString(dtype) + std::string(", ") + std::to_string(rows) + "x4x" +
                     std::to_string(inner));
        at::Tensor x = (torch::randn({rows, 4, inner}) * 2).to(dtype);
        x.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
        for (const at::Tensor& amax : {torch::tensor(1.5), torch::rand({1, 4, 1}) + 0.5}) {
          const auto fake =
              both_ways([&] { return ops::fake_tensor_quant(x, amax, 8, false, true); });
          EXPECT_TRUE(bit_equal(fake.first, fake.second));
          const auto quant = both_ways([&] { return ops::tensor_quant(x, amax, 8, false, true); });
          EXPECT_TRUE(bit_equal(std::get<0>(quant.first), std::get<0>(quant.second)));
          const auto masked =
              both_ways([&] { return ops::fake_tensor_quant_with_mask(x, amax, 6, false, true); });
          EXPECT_TRUE(bit_equal(std::get<0>(masked.first), std::get<0>(masked.second)));
          EXPECT_TRUE(torch::equal(std::get<1>(masked.first), std::get<1>(masked.second)));
          const auto out = both_ways([&] {
            at::Tensor storage = torch::full({x.numel() + 1}, 7, x.options());
            at::Tensor view = storage.slice(0, 1).view(x.sizes());
            ops::fake_tensor_quant_out(x, amax, 8, false, true, view);
            return storage;
          });
          EXPECT_TRUE(bit_equal(out.first, out.second));
          const auto in_place = both_ways([&] {
            at::Tensor y = x.clone();
            ops::fake_tensor_quant_(y, amax, 8, false, true);
            return y;
          });
          EXPECT_TRUE(bit_equal(in_place.first, fake.second));
          EXPECT_TRUE(bit_equal(in_place.second, fake.second));
        }
      }
    }
  }
}

// A gradient the caller keeps gets a new tensor: streamed, a word of 64 elements with a cleared
// bit goes through a buffer. Masks from all set to all clear, lengths around the words and the
// blocks, NaN, -0 and -Inf kept where their bit is set.
TEST(StreamingStores, BackwardWritesTheSameBits) {
  torch::manual_seed(32);
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    for (int64_t n : {0, 1, 63, 64, 65, 200, 4095, 4097, 70001}) {
      for (double cleared : {0.0, 0.001, 0.5, 1.0}) {
        const at::Tensor grad = testing::gradient_with_specials(n, dtype);
        const at::Tensor mask = torch::rand({n}).ge(cleared);
        at::Tensor bits = torch::empty({detail::packed_mask_bytes(n)}, torch::kByte);
        detail::pack_mask_bits(mask.data_ptr<bool>(), n, bits.data_ptr<uint8_t>());
        const auto result = both_ways([&] { return ops::ste_backward(grad, bits); });
        ASSERT_TRUE(bit_equal(result.first, torch::where(mask, grad, torch::zeros_like(grad))))
            << dtype << " n=" << n << " cleared=" << cleared;
        ASSERT_TRUE(bit_equal(result.first, result.second));
      }
    }
  }
}

}  // namespace
}  // namespace torchquant
