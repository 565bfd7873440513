#pragma once
// What every benchmark binary shares: the 16M-element fp32 tensor, thread setup, byte counts,
// and the streaming-copy baseline.

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

namespace torchquant {
namespace bench {

/// 64x256x32x32 fp32 gaussian values (16M, 64 MB), a preallocated output of the same shape, and a
/// gradient-like tensor.
struct Data {
  at::Tensor x, grad_out, out;
  Data() {
    at::manual_seed(0);
    x = at::randn({64, 256, 32, 32});
    grad_out = at::randn_like(x);
    out = at::empty_like(x);
  }
};

inline Data& data() {
  static Data d;
  return d;
}

/// The benchmark's argument is the number of intra-op threads.
inline void setup(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  data();
}

inline void finish(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * data().x.numel() * 4);
}

/// The baseline, once: a streaming copy of the same tensor into a preallocated output.
inline void copy_once() {
  data().out.copy_(data().x);
  benchmark::ClobberMemory();
}

inline void BM_Copy(benchmark::State& state) {
  setup(state);
  for (auto _ : state) copy_once();
  finish(state);
}

}  // namespace bench
}  // namespace torchquant
