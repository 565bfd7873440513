#pragma once
// What the hand-dispatched x86-64 kernels (src/calib/*_avx2.cpp, *_avx512.cpp, ...) put on their
// functions, so that one translation unit holds every version and only the dispatcher decides
// which runs (src/util/cpu_isa.h). Includes the intrinsics on x86-64. Internal header.

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// Compile a function for AVX2, or for AVX-512 F, BW, DQ and VL (what CpuIsa::kAvx512 means).
#define TORCHQUANT_TARGET_AVX2 __attribute__((target("avx2")))
/// AVX2 with F16C's float16 conversions (every AVX2 CPU has them; check both).
#define TORCHQUANT_TARGET_AVX2_F16C __attribute__((target("avx2,f16c")))
#define TORCHQUANT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

/// Around intrinsics code: GCC 12 warns about the undefined-value operand inside its own headers
/// (AVX-512 reductions and masked loads, AVX2 gathers).
#if defined(__GNUC__) && !defined(__clang__)
#define TORCHQUANT_INTRINSICS_WARNINGS_OFF                                                   \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define TORCHQUANT_INTRINSICS_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define TORCHQUANT_INTRINSICS_WARNINGS_OFF
#define TORCHQUANT_INTRINSICS_WARNINGS_ON
#endif
