// CPU kernel of scaled_e4m3 (upstream has none: it needs its CUDA extension).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <type_traits>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/e4m3.h"
#include "ops/quant_common.h"

namespace torchquant {
namespace detail {

void e4m3_kernel_cpu(const at::Tensor& x, float scale, bool zero, float mask_amax,
                     const at::Tensor& out, const at::Tensor& mask) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "scaled_e4m3_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        scalar_t* yp = out.data_ptr<scalar_t>();
        bool* mp = mask.defined() ? mask.data_ptr<bool>() : nullptr;
        const acc_t s = scale, tiny = static_cast<acc_t>(kZeroAmaxThreshold), amax = mask_amax;
        at::parallel_for(0, x.numel(), 16384, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const acc_t xi = static_cast<acc_t>(xp[i]);
            const bool to_zero = zero || std::fabs(xi) < tiny;
            yp[i] = static_cast<scalar_t>(to_zero ? acc_t(0) : e4m3_round(xi * s) / s);
            if (mp != nullptr) mp[i] = std::fabs(xi) <= amax;
          }
        });
      });
}

}  // namespace detail
}  // namespace torchquant
