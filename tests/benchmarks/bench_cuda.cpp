// The core ops on a CUDA tensor (issue 3: >= 85% of a device-to-device copy's bandwidth), in the
// same binary as their baseline: 64x256x32x32 fp32 (16M elements, 64 MB) on the current GPU.
//   Copy              out.copy_(x), device to device
//   Fwd/...           fake_tensor_quant_out into a preallocated output, per tensor / per channel
//   FwdMask/...       the forward that also writes the straight-through mask (autograd's)
//   SteBackward       the mask applied to a gradient into a fresh tensor
//   AbsHistogram      _abs_histogram of x, 2048 bins (HistogramCalibrator's CUDA path)
// Each iteration launches kLaunches ops back to back and then waits for the device, so that the
// host's launch and synchronisation costs are spread over many kernels; bytes_per_second counts
// the bytes each op must move (read + write), comparable with the copy's. Without a CUDA device
// every benchmark stops with an error saying so. Not part of docs/benchmarks.md yet: no GPU has
// been lent to a session that could run it.

#include <ATen/Functions.h>
#include <benchmark/benchmark.h>
#include <torch/cuda.h>
#include <torchquant/tensor_quant.h>

#include "ops/quant_ops.h"

namespace {

constexpr int64_t kLaunches = 50;
constexpr int64_t kBytes = int64_t{64} * 256 * 32 * 32 * 4;

struct CudaData {
  at::Tensor x, out, grad, amax_tensor, amax_channel, mask;
  CudaData() {
    at::manual_seed(0);
    const auto cuda = at::TensorOptions().device(at::kCUDA);
    x = at::randn({64, 256, 32, 32}, cuda);
    out = at::empty_like(x);
    grad = at::randn_like(x);
    amax_tensor = x.abs().max();
    amax_channel = x.abs().amax({0, 2, 3}, true);
    mask =
        std::get<1>(torchquant::ops::fake_tensor_quant_with_mask(x, amax_tensor, 8, false, true));
  }
};

// The device's data, or nullptr after reporting that there is no device.
CudaData* cuda_data(benchmark::State& state) {
  if (!torch::cuda::is_available()) {
    state.SkipWithError("no CUDA device visible");
    return nullptr;
  }
  static CudaData d;
  return &d;
}

// Runs `op` kLaunches times per iteration, waiting for the device at the end of each; `bytes` is
// what one op moves.
template <typename Op>
void run(benchmark::State& state, int64_t bytes, const Op& op) {
  for (auto _ : state) {
    for (int64_t k = 0; k < kLaunches; ++k) op();
    torch::cuda::synchronize();
  }
  state.SetBytesProcessed(state.iterations() * kLaunches * bytes);
  state.SetItemsProcessed(state.iterations() * kLaunches);
}

void BM_CudaCopy(benchmark::State& state) {
  CudaData* d = cuda_data(state);
  if (d == nullptr) return;
  run(state, 2 * kBytes, [&] { d->out.copy_(d->x); });
}

void BM_CudaFwd(benchmark::State& state, bool per_channel) {
  CudaData* d = cuda_data(state);
  if (d == nullptr) return;
  const at::Tensor& amax = per_channel ? d->amax_channel : d->amax_tensor;
  run(state, 2 * kBytes, [&] { torchquant::fake_tensor_quant_out(d->out, d->x, amax); });
}

void BM_CudaFwdMask(benchmark::State& state, bool per_channel) {
  CudaData* d = cuda_data(state);
  if (d == nullptr) return;
  const at::Tensor& amax = per_channel ? d->amax_channel : d->amax_tensor;
  // One byte of mask per element on CUDA.
  run(state, 2 * kBytes + kBytes / 4, [&] {
    torchquant::ops::fake_tensor_quant_with_mask_out(d->x, amax, 8, false, true, d->out, d->mask);
  });
}

void BM_CudaSteBackward(benchmark::State& state) {
  CudaData* d = cuda_data(state);
  if (d == nullptr) return;
  run(state, 2 * kBytes + kBytes / 4,
      [&] { benchmark::DoNotOptimize(torchquant::ops::ste_backward(d->grad, d->mask)); });
}

void BM_CudaAbsHistogram(benchmark::State& state) {
  CudaData* d = cuda_data(state);
  if (d == nullptr) return;
  const double top = d->amax_tensor.item<double>();
  run(state, kBytes,
      [&] { benchmark::DoNotOptimize(torchquant::ops::abs_histogram(d->x, top, 2048, false)); });
}

#define TORCHQUANT_CUDA_BENCH(...) \
  __VA_ARGS__->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5)

TORCHQUANT_CUDA_BENCH(BENCHMARK(BM_CudaCopy));
TORCHQUANT_CUDA_BENCH(BENCHMARK_CAPTURE(BM_CudaFwd, PerTensor, false));
TORCHQUANT_CUDA_BENCH(BENCHMARK_CAPTURE(BM_CudaFwd, PerChannel, true));
TORCHQUANT_CUDA_BENCH(BENCHMARK_CAPTURE(BM_CudaFwdMask, PerTensor, false));
TORCHQUANT_CUDA_BENCH(BENCHMARK_CAPTURE(BM_CudaFwdMask, PerChannel, true));
TORCHQUANT_CUDA_BENCH(BENCHMARK(BM_CudaSteBackward));
TORCHQUANT_CUDA_BENCH(BENCHMARK(BM_CudaAbsHistogram));

}  // namespace

BENCHMARK_MAIN();
