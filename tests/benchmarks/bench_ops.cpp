// Quantization ops against their baselines, in one binary and one run:
//   Copy            a streaming copy of the same tensor into a preallocated output (the floor)
//   CopyStreamed    the same copy with streaming (non-temporal) stores, as the ops write outputs
//                   larger than the last-level cache: no read of the output's lines before
//                   writing them (PairedCopyStreamed: against the copy, alternating)
//   Aten            ATen's fake_quantize_per_tensor_affine / _per_channel_affine (+ backward)
//   Recipe          pytorch_quantization's CPU recipe as separate ATen ops (+ where() backward)
//   TorchQuant      torchquant::fake_tensor_quant (fresh output, preallocated output, + backward)
//   ...HandedOver   forward+backward with the gradient handed to the backward node, as in a network
//   Paired...       TorchQuant's preallocated forward and forward+backward alternating with the
//                   copy within each iteration (their time ratio)
//   PairedFwdDtype  the preallocated forward in float32, float16 and bfloat16, AVX2 loop and
//                   generic loop, against a copy of the same dtype
//   PairedE4m3      scaled_e4m3, and ATen's float8 cast, against the copy
//   PairedAffine    fake_affine_tensor_quant (fused CPU kernel, and upstream's composition of ATen
//                   ops) in float32 (without and with the straight-through mask), float16,
//                   bfloat16 and float64, against a copy of the same dtype
// fp32, 64x256x32x32 (16M elements), per tensor and per channel (axis 1); the argument is the
// number of intra-op threads. docs/benchmarks.md is generated from this by scripts/bench-report.py.

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torchquant/tensor_quant.h>

#include <cmath>
#include <optional>
#include <tuple>

#include "bench_common.h"
#include "ops/affine_common.h"  // internal (src/): upstream's composition, for comparison
#include "ops/quant_ops.h"      // internal (src/): the op with its mask
#include "paired.h"
#include "util/cpu_isa.h"           // internal (src/): the generic loop, for comparison
#include "util/streaming_stores.h"  // internal (src/): the streamed copy

namespace {

using torchquant::bench::BM_Copy;
using torchquant::bench::data;
using torchquant::bench::finish;
using torchquant::bench::setup;

struct Amax {
  at::Tensor per_tensor, per_channel;
  Amax() {
    per_tensor = data().x.abs().max() * 0.9;
    per_channel = data().x.abs().amax({0, 2, 3}, true) * 0.9;
  }
};

const at::Tensor& amax_of(bool per_channel) {
  static Amax a;
  return per_channel ? a.per_channel : a.per_tensor;
}

// One step: the gradient of x after a backward of `forward(x)` with grad_out; the grad is dropped
// each time so that AccumulateGrad takes the buffer instead of adding into it.
template <typename F>
void forward_backward_step(const at::Tensor& x, F forward) {
  at::Tensor y = forward(x);
  y.backward(data().grad_out);
  benchmark::DoNotOptimize(x.grad().data_ptr());
  x.mutable_grad().reset();
}

template <typename F>
void forward_backward(benchmark::State& state, F forward) {
  at::Tensor x = data().x.detach().requires_grad_(true);
  for (auto _ : state) forward_backward_step(x, forward);
}

// The same step as in a network: the quantizer's backward node gets a gradient that nobody else
// holds, as the next layer's backward (a convolution's, a matmul's) hands it over; here it is
// called directly with the gradient moved in (without grad mode, as autograd's engine does). The
// gradient's memory is recycled from step to step (`pool`): a node that writes into it hands the
// same memory back, one that allocates a new tensor frees the old one.
template <typename F>
void handed_over(benchmark::State& state, F forward) {
  at::Tensor x = data().x.detach().requires_grad_(true);
  at::Tensor pool = data().grad_out.clone();
  for (auto _ : state) {
    const at::Tensor y = forward(x);
    const at::NoGradGuard no_grad;  // as the engine runs a backward without create_graph
    torch::autograd::variable_list grads;
    grads.push_back(std::move(pool));
    pool = std::move((*y.grad_fn())(std::move(grads))[0]);
    benchmark::DoNotOptimize(pool.data_ptr());
  }
}

at::Tensor aten_fake_quant(const at::Tensor& x, bool per_channel) {
  if (!per_channel) {
    return at::fake_quantize_per_tensor_affine(x, amax_of(false).item<double>() / 127.0, 0, -127,
                                               127);
  }
  const at::Tensor scale = (amax_of(true).reshape({-1}) / 127.0).contiguous();
  const at::Tensor zero = at::zeros({scale.numel()}, at::kInt);
  return at::fake_quantize_per_channel_affine(x, scale, zero, 1, -127, 127);
}

at::Tensor recipe_fake_quant(const at::Tensor& x, const at::Tensor& amax) {
  const at::Tensor scale = at::full_like(amax, 127.0) / amax;
  return at::clamp(at::round(x * scale), -127, 127) / scale;
}

void BM_Aten_Fwd(benchmark::State& state, bool per_channel) {
  setup(state);
  for (auto _ : state) benchmark::DoNotOptimize(aten_fake_quant(data().x, per_channel).data_ptr());
  finish(state);
}

void BM_Aten_FwdBwd(benchmark::State& state, bool per_channel) {
  setup(state);
  forward_backward(state, [&](const at::Tensor& x) { return aten_fake_quant(x, per_channel); });
  finish(state);
}

void BM_Aten_FwdBwdHandedOver(benchmark::State& state, bool per_channel) {
  setup(state);
  handed_over(state, [&](const at::Tensor& x) { return aten_fake_quant(x, per_channel); });
  finish(state);
}

void BM_Recipe_Fwd(benchmark::State& state, bool per_channel) {
  setup(state);
  for (auto _ : state) {
    benchmark::DoNotOptimize(recipe_fake_quant(data().x, amax_of(per_channel)).data_ptr());
  }
  finish(state);
}

void BM_Recipe_FwdBwd(benchmark::State& state, bool per_channel) {
  setup(state);
  const at::Tensor& amax = amax_of(per_channel);
  for (auto _ : state) {
    const at::Tensor y = recipe_fake_quant(data().x, amax);  // forward keeps x for backward
    const at::Tensor g = at::where(data().x.abs() <= amax, data().grad_out, at::zeros({1}));
    benchmark::DoNotOptimize(y.data_ptr());
    benchmark::DoNotOptimize(g.data_ptr());
  }
  finish(state);
}

void BM_TorchQuant_Fwd(benchmark::State& state, bool per_channel) {
  setup(state);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        torchquant::fake_tensor_quant(data().x, amax_of(per_channel)).data_ptr());
  }
  finish(state);
}

void fwd_prealloc_once(bool per_channel) {
  torchquant::fake_tensor_quant_out(data().out, data().x, amax_of(per_channel));
  benchmark::ClobberMemory();
}

void BM_TorchQuant_FwdPrealloc(benchmark::State& state, bool per_channel) {
  setup(state);
  for (auto _ : state) fwd_prealloc_once(per_channel);
  finish(state);
}

void BM_TorchQuant_FwdBwd(benchmark::State& state, bool per_channel) {
  setup(state);
  forward_backward(state, [&](const at::Tensor& x) {
    return torchquant::fake_tensor_quant(x, amax_of(per_channel));
  });
  finish(state);
}

void BM_TorchQuant_FwdBwdHandedOver(benchmark::State& state, bool per_channel) {
  setup(state);
  handed_over(state, [&](const at::Tensor& x) {
    return torchquant::fake_tensor_quant(x, amax_of(per_channel));
  });
  finish(state);
}

// The forward into a preallocated output and the forward+backward again, each alternating with
// the copy within every iteration (paired.h).
void BM_PairedTorchQuant_FwdPrealloc(benchmark::State& state, bool per_channel) {
  setup(state);
  torchquant::bench::paired(
      state, [&] { fwd_prealloc_once(per_channel); }, torchquant::bench::copy_once);
}

void BM_PairedTorchQuant_FwdBwd(benchmark::State& state, bool per_channel) {
  setup(state);
  at::Tensor x = data().x.detach().requires_grad_(true);
  torchquant::bench::paired(
      state,
      [&] {
        forward_backward_step(x, [&](const at::Tensor& v) {
          return torchquant::fake_tensor_quant(v, amax_of(per_channel));
        });
      },
      torchquant::bench::copy_once);
}

void copy_streamed_once() {
  const float* x = data().x.const_data_ptr<float>();
  float* out = data().out.data_ptr<float>();
  at::parallel_for(0, data().x.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    torchquant::detail::stream_copy(x + b, out + b, (e - b) * static_cast<int64_t>(sizeof(float)));
    torchquant::detail::stream_fence();
  });
  benchmark::ClobberMemory();
}

void BM_CopyStreamed(benchmark::State& state) {
  setup(state);
  for (auto _ : state) copy_streamed_once();
  finish(state);
}

void BM_PairedCopyStreamed(benchmark::State& state) {
  setup(state);
  torchquant::bench::paired(state, copy_streamed_once, torchquant::bench::copy_once);
}

// The forward into a preallocated output in float32, float16 and bfloat16, through the AVX2 loop
// (ops/cpu/fake_quant_avx2.h) or the generic loop (as under TORCHQUANT_CPU_ISA=scalar), each
// alternating with a copy of the same tensor (same dtype).
void BM_PairedFwdDtype(benchmark::State& state, at::ScalarType dtype, bool generic) {
  setup(state);
  const at::Tensor x = data().x.to(dtype);
  at::Tensor out = at::empty_like(x), copy = at::empty_like(x);
  std::optional<torchquant::detail::ScopedCpuIsaCap> cap;
  if (generic) cap.emplace(torchquant::detail::CpuIsa::kScalar);
  torchquant::bench::paired(
      state,
      [&] {
        torchquant::fake_tensor_quant_out(out, x, amax_of(false));
        benchmark::ClobberMemory();
      },
      [&] {
        copy.copy_(x);
        benchmark::ClobberMemory();
      });
}

// scaled_e4m3 (a fresh output), or ATen's float8 cast of the scaled tensor (which does not
// saturate: a baseline, not the same op), alternating with the copy.
void BM_PairedE4m3(benchmark::State& state, bool aten) {
  setup(state);
  const at::Tensor& x = data().x;
  const at::Tensor& amax = amax_of(false);
  const double scale = 448.0 / amax.item<double>();
  torchquant::bench::paired(
      state,
      [&] {
        const at::Tensor y = aten ? (x * scale).to(at::kFloat8_e4m3fn).to(at::kFloat) / scale
                                  : torchquant::scaled_e4m3(x, amax);
        benchmark::DoNotOptimize(y.data_ptr());
      },
      torchquant::bench::copy_once);
}

// fake_affine_tensor_quant over [-amax, amax / 2] in `dtype` (a fresh output; with `mask`, also
// the mask that autograd saves), or upstream's composition of ATen ops (its mask: logical_and of
// two comparisons), alternating with a copy of the same tensor (same dtype).
void BM_PairedAffine(benchmark::State& state, at::ScalarType dtype, bool composite, bool mask) {
  setup(state);
  const at::Tensor x = data().x.to(dtype);
  at::Tensor copy = at::empty_like(x);
  const at::Tensor lo = -amax_of(false).reshape({}), hi = amax_of(false).reshape({}) / 2;
  const auto params = torchquant::detail::prepare_affine_params("bench", x, lo, hi, 8);
  torchquant::bench::paired(
      state,
      [&] {
        at::Tensor y, m;
        if (composite) {
          y = torchquant::detail::fake_affine_composite(x, params);
          if (mask) m = torchquant::detail::affine_mask_composite(x, params);
        } else if (mask) {
          std::tie(y, m) = torchquant::ops::fake_affine_tensor_quant_with_mask(x, lo, hi, 8);
        } else {
          y = torchquant::fake_affine_tensor_quant(x, lo, hi, 8);
        }
        benchmark::DoNotOptimize(y.data_ptr());
      },
      [&] {
        copy.copy_(x);
        benchmark::ClobberMemory();
      });
}

void threads(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

BENCHMARK(BM_Copy)->Apply(threads);
BENCHMARK(BM_CopyStreamed)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_Fwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdPrealloc, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdBwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_Fwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_FwdBwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdBwdHandedOver, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_FwdBwdHandedOver, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_Recipe_Fwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_Recipe_FwdBwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_Fwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdPrealloc, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdBwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_Fwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_FwdBwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_TorchQuant_FwdBwdHandedOver, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_Aten_FwdBwdHandedOver, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_Recipe_Fwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_Recipe_FwdBwd, PerChannel, true)->Apply(threads);
BENCHMARK(BM_PairedCopyStreamed)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedTorchQuant_FwdPrealloc, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedTorchQuant_FwdBwd, PerTensor, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedTorchQuant_FwdPrealloc, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedTorchQuant_FwdBwd, PerChannel, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, Float_Avx2Loop, at::kFloat, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, Float_GenericLoop, at::kFloat, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, Half_Avx2Loop, at::kHalf, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, Half_GenericLoop, at::kHalf, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, BFloat16_Avx2Loop, at::kBFloat16, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedFwdDtype, BFloat16_GenericLoop, at::kBFloat16, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedE4m3, TorchQuant, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedE4m3, AtenFloat8Cast, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Float_TorchQuant, at::kFloat, false, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Float_TorchQuantWithMask, at::kFloat, false, true)
    ->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Float_Composite, at::kFloat, true, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Float_CompositeWithMask, at::kFloat, true, true)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Half_TorchQuant, at::kHalf, false, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Half_Composite, at::kHalf, true, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, BFloat16_TorchQuant, at::kBFloat16, false, false)
    ->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, BFloat16_Composite, at::kBFloat16, true, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Double_TorchQuant, at::kDouble, false, false)->Apply(threads);
BENCHMARK_CAPTURE(BM_PairedAffine, Double_Composite, at::kDouble, true, false)->Apply(threads);

}  // namespace

BENCHMARK_MAIN();
