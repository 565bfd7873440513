#pragma once
// Natural logarithms of many doubles at once, through glibc's vector math library (libmvec) where
// the CPU and the build have it. Internal header.

#include <cstdint>

namespace torchquant {
namespace detail {

/// out[j] = log(x[j]) for j < n, with libmvec's AVX-512 or AVX2 variant where available (within
/// 4 ulp of std::log by glibc's documentation; 1 ulp in our test) and std::log elsewhere (other
/// CPUs, builds without libmvec, the last n % width values). For callers whose own error margins
/// absorb that (the entropy search's fast score, re-scored exactly near a tie); not for results
/// that must match a reference bit for bit.
///
///   double x[3] = {1.0, 2.0, 10.0}, y[3];
///   detail::log_n(x, y, 3);  // y ~ {0, 0.693..., 2.302...}
void log_n(const double* x, double* out, int64_t n);

}  // namespace detail
}  // namespace torchquant
