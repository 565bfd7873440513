#include "util/vector_log.h"

#include <cmath>

#include "util/cpu_isa.h"

#if defined(TORCHQUANT_HAVE_LIBMVEC)
#include <immintrin.h>

// glibc's vector variants of log (x86-64 vector function ABI names).
extern "C" __attribute__((target("avx2"))) __m256d _ZGVdN4v_log(__m256d);
extern "C" __attribute__((target("avx512f"))) __m512d _ZGVeN8v_log(__m512d);
#endif

namespace torchquant {
namespace detail {
namespace {

void log_scalar(const double* x, double* out, int64_t begin, int64_t n) {
  for (int64_t j = begin; j < n; ++j) out[j] = std::log(x[j]);
}

#if defined(TORCHQUANT_HAVE_LIBMVEC)
// Each returns how many it did (whole vectors only).
__attribute__((target("avx2"))) int64_t log_avx2(const double* x, double* out, int64_t n) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) _mm256_storeu_pd(out + j, _ZGVdN4v_log(_mm256_loadu_pd(x + j)));
  return j;
}

__attribute__((target("avx512f"))) int64_t log_avx512(const double* x, double* out, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm512_storeu_pd(out + j, _ZGVeN8v_log(_mm512_loadu_pd(x + j)));
  return j;
}
#endif

}  // namespace

void log_n(const double* x, double* out, int64_t n) {
  int64_t done = 0;
#if defined(TORCHQUANT_HAVE_LIBMVEC)
  const CpuIsa isa = cpu_isa();
  if (isa == CpuIsa::kAvx512) {
    done = log_avx512(x, out, n);
  } else if (isa == CpuIsa::kAvx2) {
    done = log_avx2(x, out, n);
  }
#endif
  log_scalar(x, out, done, n);
}

}  // namespace detail
}  // namespace torchquant
