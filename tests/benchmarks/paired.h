#pragma once
// A benchmark and its baseline in the same iterations: this shared VM's speed drifts within
// seconds (the float model's forward has measured 21 to 61 ms within an hour, the 2-thread copy
// 3.3 to 8 ms), and separate benchmarks run seconds apart; timed back to back, both see the same
// drift.

#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>

namespace torchquant {
namespace bench {

/// Runs `run` and `base` once each per iteration, in alternating order, each timed on its own;
/// reports `ratio` (run's total time over base's), `ms` and `base_ms` (mean per call).
inline void paired(benchmark::State& state, const std::function<void()>& run,
                   const std::function<void()>& base) {
  using Clock = std::chrono::steady_clock;
  const auto timed = [](const std::function<void()>& f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  double run_s = 0, base_s = 0;
  bool base_first = true;
  for (auto _ : state) {
    if (base_first) base_s += timed(base);
    run_s += timed(run);
    if (!base_first) base_s += timed(base);
    base_first = !base_first;
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["ratio"] = run_s / base_s;
  state.counters["ms"] = 1e3 * run_s / n;
  state.counters["base_ms"] = 1e3 * base_s / n;
}

}  // namespace bench
}  // namespace torchquant
