#pragma once
// Histogram passes remembered per thread, so that calibrators fed the same tensor in one batch (a
// ResNet block's first convolution and its downsample, attention's q, k and v projections) count
// it once. Internal header.

#include <ATen/core/Tensor.h>
#include <c10/core/StorageImpl.h>
#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <vector>

#include "calib/histogram_kernel.h"

namespace torchquant {
namespace calib {
namespace detail {

/// What one histogram pass over a tensor found.
struct PassResult {
  std::vector<int64_t> counts;  // num_bins int64 counts over [0, top]
  AbsMax max;                   // max |x| over all values, counted or not
};

/// The last few histogram passes of this thread over whole tensors. An entry matches only the
/// same values counted with the same rule: the same storage (held weakly, so that its address
/// cannot come back as another tensor's while the entry exists), data pointer, element count and
/// version counter (every in-place op on the tensor or a view of it bumps it), and the same top,
/// num_bins and skip_zeros. Tensors without a version counter (created in inference mode) and
/// histograms of more than kMaxBins bins are not remembered. Values written through a raw data
/// pointer, bypassing ATen, are invisible to the version counter (as to autograd's own checks).
///
///   PassMemo& memo = PassMemo::this_thread();
///   if (const PassResult* r = memo.find(x, top, 2048, false)) use(*r);
///   else memo.record(x, top, 2048, false, count(x));
class PassMemo {
 public:
  static constexpr size_t kEntries = 4;
  static constexpr int64_t kMaxBins = int64_t{1} << 16;

  static PassMemo& this_thread();

  /// Whether passes over `x` can be remembered (a float32 contiguous CPU tensor with a version
  /// counter).
  static bool eligible(const at::Tensor& x);

  /// The recorded pass over `x`'s current values with this rule, or nullptr.
  const PassResult* find(const at::Tensor& x, float top, int64_t num_bins, bool skip_zeros);
  /// Remembers a pass over `x` (eligible) in place of the least recently used entry.
  void record(const at::Tensor& x, float top, int64_t num_bins, bool skip_zeros,
              const PassResult& result);

  /// Lookups answered from an entry on this thread (for tests).
  int64_t hits() const { return hits_; }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage{c10::intrusive_ptr<c10::StorageImpl>()};
    const void* data = nullptr;
    int64_t n = 0;
    int64_t version = 0;
    float top = 0.f;
    int64_t num_bins = 0;
    bool skip_zeros = false;
    uint64_t last_used = 0;
    PassResult result;
  };
  bool matches(const Entry& e, const at::Tensor& x, float top, int64_t num_bins,
               bool skip_zeros) const;

  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  int64_t hits_ = 0;
};

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
