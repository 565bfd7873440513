// CPU kernel of the straight-through estimator's backward: grad where the mask is set, else 0.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/cpu/cpu_kernels.h"

namespace torchquant {
namespace detail {
namespace {

// Same-size unsigned integer of T.
template <typename T>
using Bits =
    std::conditional_t<sizeof(T) == 2, uint16_t,
                       std::conditional_t<sizeof(T) == 4, uint32_t,
                                          std::conditional_t<sizeof(T) == 8, uint64_t, void>>>;

// out = g where m, else +0, bit for bit. Written on the bit patterns (g & -m, m being 0 or 1) so
// the loop has no branch and no conditional load: GCC vectorises it (a `m[i] ? g[i] : 0` select
// stays a scalar, branchy loop).
template <typename T>
C10_ALWAYS_INLINE void masked_copy(const T* __restrict g, const bool* __restrict m,
                                   T* __restrict out, int64_t n) {
  using U = Bits<T>;
  // The mask's bytes as uint8_t: GCC vectorises a zero extension from uint8_t, not from bool.
  const auto* mb = reinterpret_cast<const uint8_t*>(m);
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, g + i, sizeof(U));
    bits &= static_cast<U>(-static_cast<U>(mb[i]));
    std::memcpy(out + i, &bits, sizeof(U));
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx2", "default")))
#endif
void masked_copy_f32(const float* g, const bool* m, float* out, int64_t n) {
  masked_copy(g, m, out, n);
}

template <typename T>
void masked_copy_any(const T* g, const bool* m, T* out, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    masked_copy_f32(g, m, out, n);
  } else {
    masked_copy(g, m, out, n);
  }
}

}  // namespace

void ste_backward_cpu(const at::Tensor& grad, const at::Tensor& mask,
                      const at::Tensor& grad_input) {
  const bool* mp = mask.const_data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "ste_backward_cpu", [&] {
        const scalar_t* gp = grad.const_data_ptr<scalar_t>();
        scalar_t* op = grad_input.data_ptr<scalar_t>();
        at::parallel_for(0, grad.numel(), 32768, [&](int64_t b, int64_t e) {
          masked_copy_any(gp + b, mp + b, op + b, e - b);
        });
      });
}

}  // namespace detail
}  // namespace torchquant
