// CPU kernel of tensor_quant / fake_tensor_quant: one fused pass (quantize, optional STE mask as
// packed bits, negative-input check), vectorised inner loops, at::parallel_for over chunks.
// float32, float16 and bfloat16 run fake_quant_avx2.h's loop on AVX2 CPUs; the generic loop here
// runs float64 (and everything under TORCHQUANT_CPU_ISA=scalar).

#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/fake_quant_avx2.h"
#include "ops/cpu/mask_bits.h"
#include "ops/cpu/quant_math.h"
#include "ops/quant_common.h"
#include "util/prefetch.h"
#include "util/streaming_stores.h"

namespace torchquant {
namespace detail {
namespace {

constexpr int64_t kGrain = 32768;
// Per-channel rows shorter than this run through the periodic path (scale arrays repeated).
constexpr int64_t kMinRow = 64;

template <typename scalar_t, typename acc_t>
struct Span {
  const scalar_t* x;
  scalar_t* y;
  bool* mask;
  int64_t n;
  const acc_t* scale_mul;  // one value, or n values when vec
  const acc_t* scale_div;
  const acc_t* amax;
  acc_t lo;
  acc_t hi;
};

template <typename scalar_t, typename acc_t, bool kFake, bool kMask, bool kVec>
C10_ALWAYS_INLINE int quant_span(const Span<scalar_t, acc_t>& s) {
  const scalar_t* __restrict x = s.x;
  scalar_t* __restrict y = s.y;
  bool* __restrict m = s.mask;
  const acc_t* __restrict smul = s.scale_mul;
  const acc_t* __restrict sdiv = s.scale_div;
  const acc_t* __restrict amax = s.amax;
  const acc_t smul0 = smul[0], sdiv0 = sdiv[0], amax0 = amax[0], lo = s.lo, hi = s.hi;
  const int64_t n = s.n;
  int neg = 0;
  prefetched_loop(x, y, n, [&](int64_t i) {
    const acc_t xi = static_cast<acc_t>(x[i]);
    const acc_t q = round_half_even_small(clamp_keep_nan(xi * (kVec ? smul[i] : smul0), lo, hi));
    if constexpr (!kFake) {
      y[i] = static_cast<scalar_t>(q);
    } else if constexpr (std::is_same<scalar_t, c10::Half>::value) {
      // Upstream divides in fp16: q.half() / scale.half().
      y[i] = static_cast<scalar_t>(static_cast<acc_t>(static_cast<scalar_t>(q)) /
                                   (kVec ? sdiv[i] : sdiv0));
    } else {
      y[i] = static_cast<scalar_t>(q / (kVec ? sdiv[i] : sdiv0));
    }
    if constexpr (kMask) m[i] = std::abs(xi) <= (kVec ? amax[i] : amax0);
    neg |= xi < acc_t(0);
  });
  return neg;
}

template <typename scalar_t, typename acc_t, bool kFake, bool kMask>
C10_ALWAYS_INLINE int select_vec(const Span<scalar_t, acc_t>& s, bool vec) {
  return vec ? quant_span<scalar_t, acc_t, kFake, kMask, true>(s)
             : quant_span<scalar_t, acc_t, kFake, kMask, false>(s);
}

template <typename scalar_t, typename acc_t, bool kFake>
C10_ALWAYS_INLINE int select_mask(const Span<scalar_t, acc_t>& s, bool vec) {
  return s.mask != nullptr ? select_vec<scalar_t, acc_t, kFake, true>(s, vec)
                           : select_vec<scalar_t, acc_t, kFake, false>(s, vec);
}

template <typename scalar_t, typename acc_t>
C10_ALWAYS_INLINE int run_span(const Span<scalar_t, acc_t>& s, bool fake, bool vec) {
  return fake ? select_mask<scalar_t, acc_t, true>(s, vec)
              : select_mask<scalar_t, acc_t, false>(s, vec);
}

// float32 where fake_quant_avx2.h's loop does not run (no AVX2, or TORCHQUANT_CPU_ISA=scalar):
// compiled for AVX2 and baseline x86-64, picked at load time.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx2", "default")))
#endif
int run_span_f32(const Span<float, float>& s, bool fake, bool vec) {
  return run_span<float, float>(s, fake, vec);
}

template <typename scalar_t, typename acc_t>
int dispatch_span(const Span<scalar_t, acc_t>& s, bool fake, bool vec) {
  if constexpr (std::is_same<scalar_t, float>::value) {
    return run_span_f32(s, fake, vec);
  } else {
    return run_span<scalar_t, acc_t>(s, fake, vec);
  }
}

// float32, float16 or bfloat16 on an AVX2 CPU: fake_quant_avx2.h's loop over rows of at least
// kMinRow elements or the repeated pattern of `period` values (smul, sdiv, amax: per channel, or
// per element of the pattern), split over threads at multiples of 8 elements (whole mask bytes).
template <typename scalar_t>
bool quant_rows(const at::Tensor& x, const QuantParams& p, bool fake, bool rows, int64_t period,
                const at::Tensor& smul, const at::Tensor& sdiv, const at::Tensor& amax,
                const at::Tensor& out, const at::Tensor& mask) {
  QuantRows a;
  a.x = x.const_data_ptr<scalar_t>();
  a.y = out.data_ptr<scalar_t>();
  a.dtype = rows_dtype<scalar_t>();
  a.bits = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
  a.scale_mul = smul.const_data_ptr<float>();
  a.scale_div = sdiv.const_data_ptr<float>();
  a.amax = amax.const_data_ptr<float>();
  a.inner = rows ? p.layout.inner : 0;
  a.channels = rows ? p.layout.channels : 1;
  a.period = period > 1 ? period : 0;
  a.lo = static_cast<float>(p.min_bound);
  a.hi = static_cast<float>(p.max_bound);
  a.fake = fake;
  const int64_t n = x.numel();
  a.stream = use_streaming_stores(n * static_cast<int64_t>(sizeof(scalar_t)));
  std::atomic<int> negative{0};
  at::parallel_for(0, (n + 7) / 8, kGrain / 8, [&](int64_t b, int64_t e) {
    if (quant_rows_avx2(a, b * 8, std::min(n, e * 8))) negative.store(1);
  });
  return negative.load() != 0;
}

template <typename scalar_t>
bool quant_cpu_typed(const at::Tensor& x, const QuantParams& p, bool fake, const at::Tensor& out,
                     const at::Tensor& mask) {
  using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
  const ChannelLayout& L = p.layout;
  const int64_t n = x.numel();
  at::Tensor smul = p.scale_mul, sdiv = p.scale_div, amax = p.amax;
  bool rows = false;
  int64_t period = 1;  // length of the repeating scale pattern in the periodic path
  if (L.kind == ChannelLayout::Kind::kGeneral) {
    period = n;
  } else if (L.kind == ChannelLayout::Kind::kPerChannel) {
    if (L.inner >= kMinRow) {
      rows = true;
    } else {
      period = L.channels * L.inner;
      if (L.inner > 1) {
        smul = smul.repeat_interleave(L.inner);
        sdiv = sdiv.repeat_interleave(L.inner);
        amax = amax.repeat_interleave(L.inner);
      }
    }
  }
  if constexpr (!std::is_same<scalar_t, double>::value) {
    if (quant_rows_avx2_available()) {
      return quant_rows<scalar_t>(x, p, fake, rows, period, smul, sdiv, amax, out, mask);
    }
  }
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* yp = out.data_ptr<scalar_t>();
  const acc_t* smp = smul.const_data_ptr<acc_t>();
  const acc_t* sdp = sdiv.const_data_ptr<acc_t>();
  const acc_t* amp = amax.const_data_ptr<acc_t>();
  const acc_t lo = static_cast<acc_t>(p.min_bound), hi = static_cast<acc_t>(p.max_bound);
  std::atomic<int> negative{0};

  // Elements [b, e) in as many spans as the layout needs (rows: split at row ends; periodic:
  // at period ends), element b's output at `y`; `m`, when given, receives the mask of element b
  // onwards as bools.
  auto spans = [&](int64_t b, int64_t e, scalar_t* y, bool* m) {
    int neg = 0;
    for (int64_t i = b; i < e;) {
      int64_t len = e - i, ch = 0;
      if (rows) {
        const int64_t r = i / L.inner;
        len = std::min(e, (r + 1) * L.inner) - i;
        ch = r % L.channels;
      } else if (period > 1) {
        ch = i % period;
        len = std::min(e - i, period - ch);
      }
      Span<scalar_t, acc_t> s{xp + i,   y + (i - b), m != nullptr ? m + (i - b) : nullptr,
                              len,      smp + ch,    sdp + ch,
                              amp + ch, lo,          hi};
      neg |= dispatch_span<scalar_t, acc_t>(s, fake, !rows && period > 1);
      i += len;
    }
    return neg;
  };
  // An output larger than the last-level cache is computed a chunk at a time into a buffer on
  // the stack and streamed to memory from there (util/streaming_stores.h).
  const bool stream = use_streaming_stores(n * static_cast<int64_t>(sizeof(scalar_t)));
  auto range = [&](int64_t b, int64_t e, bool* m) {
    if (!stream) return spans(b, e, yp + b, m);
    constexpr int64_t kChunk = 4096 / sizeof(scalar_t);
    alignas(64) scalar_t chunk[kChunk];
    int neg = 0;
    for (int64_t c = b; c < e; c += kChunk) {
      const int64_t stop = std::min(e, c + kChunk);
      neg |= spans(c, stop, chunk, m != nullptr ? m + (c - b) : nullptr);
      stream_copy(chunk, yp + c, (stop - c) * static_cast<int64_t>(sizeof(scalar_t)));
    }
    stream_fence();
    return neg;
  };
  if (!mask.defined()) {
    at::parallel_for(0, n, kGrain,
                     [&](int64_t b, int64_t e) { negative.fetch_or(range(b, e, nullptr)); });
  } else {
    // The mask is written as packed bits (mask_bits.h): blocks of kMaskBlock elements go through
    // a bool buffer on the stack, and no two blocks share a mask byte.
    uint8_t* bits = mask.data_ptr<uint8_t>();
    for_each_mask_block(n, kGrain, [&](int64_t b, int64_t e, bool* local) {
      negative.fetch_or(range(b, e, local));
      pack_mask_bits(local, e - b, bits + b / 8);
    });
  }
  return negative.load() != 0;
}

bool quant_kernel_cpu(const at::Tensor& x, const QuantParams& p, bool fake, const at::Tensor& out,
                      const at::Tensor& mask) {
  bool negative = false;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "tensor_quant_cpu",
      [&] { negative = quant_cpu_typed<scalar_t>(x, p, fake, out, mask); });
  return negative;
}

}  // namespace
}  // namespace detail
}  // namespace torchquant

TORCH_LIBRARY_IMPL(torchquant, CPU, m) {
  using namespace torchquant::detail;
  register_quant_kernels<quant_kernel_cpu, e4m3_kernel_cpu, ste_backward_cpu>(m);
}
