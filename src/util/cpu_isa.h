#pragma once
// Which vector instruction set the CPU kernels that dispatch by hand use, with a cap that tests set
// to run every version on one machine. Internal header.

namespace torchquant {
namespace detail {

/// The instruction sets a hand-dispatched kernel has a version for, narrowest first.
enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

/// The widest of them this CPU runs (AVX-512 means F, BW, DQ and VL; both vector levels also need
/// F16C's float16 conversions).
CpuIsa supported_cpu_isa();

/// supported_cpu_isa(), lowered to the environment's TORCHQUANT_CPU_ISA (scalar, avx2 or avx512,
/// read at the first call; another value is an error from every call) and to the cap of the
/// innermost live ScopedCpuIsaCap.
CpuIsa cpu_isa();

/// The version of a kernel for `isa`, from its scalar, AVX2 and AVX-512 versions.
///
///   return pick_version(isa, bin_codes_scalar, bin_codes_avx2, bin_codes_avx512);
template <class Fn>
Fn pick_version(CpuIsa isa, Fn scalar, Fn avx2, Fn avx512) {
  return isa == CpuIsa::kAvx512 ? avx512 : isa == CpuIsa::kAvx2 ? avx2 : scalar;
}

/// While alive, kernels dispatch to at most `cap` (tests: every version on one machine); it
/// replaces an outer scope's cap, never the environment's. Not meant to change while kernels run
/// on other threads; restores the previous cap.
///
///   { detail::ScopedCpuIsaCap scalar(detail::CpuIsa::kScalar); /* runs the scalar versions */ }
class ScopedCpuIsaCap {
 public:
  explicit ScopedCpuIsaCap(CpuIsa cap);
  ~ScopedCpuIsaCap();
  ScopedCpuIsaCap(const ScopedCpuIsaCap&) = delete;
  ScopedCpuIsaCap& operator=(const ScopedCpuIsaCap&) = delete;

 private:
  CpuIsa previous_;
};

}  // namespace detail
}  // namespace torchquant
