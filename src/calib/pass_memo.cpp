#include "calib/pass_memo.h"

#include <algorithm>
#include <cstring>

namespace torchquant {
namespace calib {
namespace detail {

PassMemo& PassMemo::this_thread() {
  static thread_local PassMemo memo;
  return memo;
}

bool PassMemo::eligible(const at::Tensor& x) {
  return x.defined() && x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() &&
         x.has_storage() && !x.is_inference();
}

bool PassMemo::matches(const Entry& e, const at::Tensor& x, float top, int64_t num_bins,
                       bool skip_zeros) const {
  // Bits, not ==: the same top, also for a NaN.
  return !e.storage.expired() &&
         e.storage._unsafe_get_target() == x.storage().unsafeGetStorageImpl() &&
         e.data == x.const_data_ptr() && e.n == x.numel() && e.version == x._version() &&
         std::memcmp(&e.top, &top, sizeof(top)) == 0 && e.num_bins == num_bins &&
         e.skip_zeros == skip_zeros;
}

const PassResult* PassMemo::find(const at::Tensor& x, float top, int64_t num_bins,
                                 bool skip_zeros) {
  if (!eligible(x)) return nullptr;
  for (Entry& e : entries_) {
    if (matches(e, x, top, num_bins, skip_zeros)) {
      e.last_used = ++clock_;
      ++hits_;
      return &e.result;
    }
  }
  return nullptr;
}

void PassMemo::record(const at::Tensor& x, float top, int64_t num_bins, bool skip_zeros,
                      const PassResult& result) {
  if (!eligible(x) || num_bins > kMaxBins) return;
  Entry* slot = nullptr;
  if (entries_.size() < kEntries) {
    slot = &entries_.emplace_back();
  } else {
    // A dead storage's entry first (it can never match again), else the least recently used.
    slot = &*std::min_element(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return std::make_pair(!a.storage.expired(), a.last_used) <
             std::make_pair(!b.storage.expired(), b.last_used);
    });
  }
  slot->storage = x.storage().getWeakStorageImpl();
  slot->data = x.const_data_ptr();
  slot->n = x.numel();
  slot->version = x._version();
  slot->top = top;
  slot->num_bins = num_bins;
  slot->skip_zeros = skip_zeros;
  slot->last_used = ++clock_;
  slot->result = result;
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
