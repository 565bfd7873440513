#include "util/cpu_isa.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace torchquant {
namespace detail {
namespace {

// The environment's cap, TORCHQUANT_CPU_ISA=scalar|avx2|avx512 (like ATen's ATEN_CPU_CAPABILITY):
// to compare the versions or to rule one out. Anything else is an error naming the variable.
CpuIsa cap_from_environment() {
  const char* value = std::getenv("TORCHQUANT_CPU_ISA");
  if (value == nullptr || *value == '\0') return CpuIsa::kAvx512;
  const std::string v(value);
  if (v == "scalar") return CpuIsa::kScalar;
  if (v == "avx2") return CpuIsa::kAvx2;
  TORCH_CHECK_VALUE(v == "avx512", "TORCHQUANT_CPU_ISA: expected scalar, avx2 or avx512, got \"", v,
                    "\"");
  return CpuIsa::kAvx512;
}

CpuIsa environment_cap() {
  static const CpuIsa value = cap_from_environment();
  return value;
}

std::atomic<CpuIsa>& scoped_cap() {
  static std::atomic<CpuIsa> value{CpuIsa::kAvx512};
  return value;
}

#if defined(__x86_64__) || defined(__i386__)
// F16C, CPUID leaf 1's ECX bit 29, read directly: clang 14's __builtin_cpu_supports does not know
// "f16c". Every AVX2 CPU has it; the vector levels require it all the same.
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && ((ecx >> 29) & 1u) != 0;
}
#endif

CpuIsa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!has_f16c()) return CpuIsa::kScalar;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return CpuIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2")) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kScalar;
}

}  // namespace

CpuIsa supported_cpu_isa() {
  static const CpuIsa isa = detect();
  return isa;
}

CpuIsa cpu_isa() {
  return std::min(
      {supported_cpu_isa(), environment_cap(), scoped_cap().load(std::memory_order_relaxed)});
}

ScopedCpuIsaCap::ScopedCpuIsaCap(CpuIsa cap_isa) : previous_(scoped_cap().exchange(cap_isa)) {}

ScopedCpuIsaCap::~ScopedCpuIsaCap() { scoped_cap().store(previous_); }

}  // namespace detail
}  // namespace torchquant
