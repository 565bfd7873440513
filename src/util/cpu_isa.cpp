#include "util/cpu_isa.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

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

CpuIsa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
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
