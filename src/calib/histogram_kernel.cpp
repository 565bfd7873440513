#include "calib/histogram_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "calib/abs_max_bits.h"
#include "calib/bin_codes.h"
#include "util/cpu_isa.h"

namespace torchquant {
namespace calib {
namespace detail {
namespace {

constexpr int64_t kGrain = 1 << 16;
// Above this many bins, accumulate_histogram counts without per-thread private copies.
constexpr int64_t kPrivateBinsLimit = 1 << 16;
constexpr uint32_t kMaxFiniteBits = 0x7f7fffffu;  // FLT_MAX

AbsMax from_bits(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return {v, bits <= kMaxFiniteBits};
}

constexpr int64_t kBlock = 512;
constexpr size_t kCopies = 4;
// Up to this many bins a thread keeps its sub-histograms between calls (about 130 KiB).
constexpr int64_t kKeptBinsLimit = 8192;
// After a block a CountFn counted badly (see histogram_serial), this many blocks go by codes.
constexpr int64_t kCodesRun = 64;

// A thread's working memory for histogram_serial: int32 counts in kCopies interleaved
// sub-histograms (num_bins + kUncountedSlots slots each, those after the bins for "not counted"),
// all zero between calls (flush_into clears what it adds), and the block buffers. Kept per thread
// for the usual bin counts: a calibration batch makes a collect per quantizer, and allocating and
// clearing this anew each time cost more than counting a small activation.
struct Scratch {
  std::vector<int32_t> sub;
  std::vector<int32_t> codes = std::vector<int32_t>(kBlock + kCodeSlack);
  std::vector<uint32_t> recheck = std::vector<uint32_t>(kBlock + kCodeSlack);
  bool clean = true;  // false from the first increment until flush_into: zero it before use

  void prepare(size_t slots) {
    if (!clean || sub.size() != kCopies * slots) sub.assign(kCopies * slots, 0);
    clean = false;
  }
  // Adds the sub-histograms' bins and `first_bin` more elements of bin 0 into `counts` under
  // `lock`, clearing the sub-histograms.
  void flush_into(int64_t* counts, size_t num_bins, int64_t first_bin, std::mutex* lock) {
    const size_t slots = sub.size() / kCopies;
    const int32_t* s0 = sub.data();
    const int32_t* s1 = s0 + slots;
    const int32_t* s2 = s1 + slots;
    const int32_t* s3 = s2 + slots;
    std::lock_guard<std::mutex> guard(*lock);
    counts[0] += first_bin;
    // Summed in int32 (a vectorised loop): histogram_serial flushes before 2^31 elements.
    for (size_t b = 0; b < num_bins; ++b) counts[b] += s0[b] + s1[b] + s2[b] + s3[b];
    std::fill(sub.begin(), sub.end(), 0);
    clean = true;
  }
};

// Counts one block's codes (as a BinCodesFn writes them) into the sub-histograms, code i into
// copy i % kCopies: runs of one bin would otherwise be a chain of increments of one counter, each
// waiting for the last store. Meanwhile it prefetches the next block, `next[0, next_len)`: the
// hardware prefetchers stop at 4 KiB page boundaries and see no loads during the counting, so
// without it every block started with a wait for memory (a third of the pass on this VM's Xeon).
void count_codes(const int32_t* code, int64_t size, int32_t* sub, size_t slots, const float* next,
                 int64_t next_len) {
  constexpr int64_t kLine = 64 / sizeof(float);
  int32_t* s0 = sub;
  int32_t* s1 = s0 + slots;
  int32_t* s2 = s1 + slots;
  int32_t* s3 = s2 + slots;
  // The next block's lines spread over the counting (fewer codes than elements where zeros were
  // counted in bulk: then more than one line per kLine codes).
  const int64_t steps = std::max<int64_t>(1, size / kLine);
  const int64_t ahead_per_step = kLine * ((next_len + steps * kLine - 1) / (steps * kLine));
  int64_t ahead = 0;
  int64_t i = 0;
  for (; i + kLine <= size; i += kLine) {
    for (const int64_t stop = std::min(next_len, ahead + ahead_per_step); ahead < stop;
         ahead += kLine) {
      __builtin_prefetch(next + ahead);
    }
    for (int64_t j = i; j < i + kLine; j += 4) {
      ++s0[code[j]];
      ++s1[code[j + 1]];
      ++s2[code[j + 2]];
      ++s3[code[j + 3]];
    }
  }
  for (; ahead < next_len; ahead += kLine) __builtin_prefetch(next + ahead);
  for (; i < size; ++i) ++s0[code[i]];
}

// One thread's range, counted into `scratch` and flushed into `counts` (under `lock`) at the end
// and before the int32 counts could overflow, a block at a time: by the CPU's CountFn (into the
// first sub-histogram) where it has one, else by its BinCodesFn and count_codes. A block the
// CountFn counted with more than a quarter of its elements not incremented into a bin (zeros, say)
// or with repeats of a bin in more than 1 in 16 is followed by kCodesRun blocks by codes, which
// skip those elements and spread the repeats over four copies. Returns the max |x| bits.
uint32_t histogram_serial(const float* data, int64_t n, const BinRule& rule, bool skip_zeros,
                          Scratch* scratch, int64_t* counts, std::mutex* lock) {
  const auto num_bins = static_cast<size_t>(rule.num_bins);
  const size_t slots = num_bins + kUncountedSlots;
  scratch->prepare(slots);
  const BinCodesFn bin_codes = bin_codes_for(torchquant::detail::cpu_isa());
  const CountFn count = count_for(torchquant::detail::cpu_isa());
  int64_t by_codes = 0;  // blocks still to go by codes
  uint32_t m = 0;
  int64_t first_bin = 0;
  int64_t since_flush = 0;
  int32_t* sub = scratch->sub.data();
  for (int64_t begin = 0; begin < n; begin += kBlock) {
    const int64_t len = std::min(kBlock, n - begin);
    BinCodes found;
    if (count != nullptr && by_codes == 0) {
      found = count(data + begin, len, rule, skip_zeros, sub, scratch->recheck.data());
      if (4 * (len - found.size) > len || 16 * found.repeats > len) by_codes = kCodesRun;
    } else {
      found = bin_codes(data + begin, len, rule, skip_zeros, scratch->codes.data(),
                        scratch->recheck.data());
      count_codes(scratch->codes.data(), found.size, sub, slots, data + begin + len,
                  std::min(kBlock, n - begin - len));
      by_codes -= by_codes > 0;
    }
    m = std::max(m, found.max_bits);
    first_bin += found.first_bin;
    for (int64_t k = 0; k < found.rechecks; ++k) ++sub[rule.exact(scratch->recheck[k])];
    since_flush += len;
    if (since_flush > (int64_t{1} << 30)) {
      scratch->flush_into(counts, num_bins, first_bin, lock);
      scratch->prepare(slots);
      first_bin = 0;
      since_flush = 0;
    }
  }
  scratch->flush_into(counts, num_bins, first_bin, lock);
  return m;
}

}  // namespace

AbsMax abs_max_serial(const float* data, int64_t n) {
  return from_bits(abs_max_bits_for(torchquant::detail::cpu_isa())(data, n));
}

AbsMax abs_max(const float* data, int64_t n) {
  const AbsMaxBitsFn abs_max_bits = abs_max_bits_for(torchquant::detail::cpu_isa());
  std::mutex mutex;
  uint32_t total = 0;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    const uint32_t part = abs_max_bits(data + begin, end - begin);
    std::lock_guard<std::mutex> lock(mutex);
    total = std::max(total, part);
  });
  return from_bits(total);
}

AbsMax accumulate_histogram(const float* data, int64_t n, float top, int64_t num_bins,
                            bool skip_zeros, int64_t* counts) {
  const BinRule rule(top, num_bins);
  if (num_bins > kPrivateBinsLimit) {
    // A grown histogram (up to 2^24 bins): per-thread private copies would cost 24 bytes a bin
    // each; count serially into one int64 scratch instead.
    std::vector<int64_t> direct(static_cast<size_t>(num_bins) + 1, 0);
    std::vector<int32_t> codes(kBlock + kCodeSlack);
    std::vector<uint32_t> recheck(kBlock + kCodeSlack);
    const BinCodesFn bin_codes = bin_codes_for(torchquant::detail::cpu_isa());
    uint32_t m = 0;
    for (int64_t begin = 0; begin < n; begin += kBlock) {
      const BinCodes found = bin_codes(data + begin, std::min(kBlock, n - begin), rule, skip_zeros,
                                       codes.data(), recheck.data());
      m = std::max(m, found.max_bits);
      direct[0] += found.first_bin;
      for (int64_t i = 0; i < found.size; ++i) ++direct[static_cast<size_t>(codes[i])];
      for (int64_t k = 0; k < found.rechecks; ++k)
        ++direct[static_cast<size_t>(rule.exact(recheck[k]))];
    }
    for (int64_t b = 0; b < num_bins; ++b) counts[b] += direct[static_cast<size_t>(b)];
    return from_bits(m);
  }
  std::mutex mutex;
  uint32_t total = 0;
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    thread_local Scratch kept;
    std::unique_ptr<Scratch> temporary;
    if (num_bins > kKeptBinsLimit) temporary = std::make_unique<Scratch>();
    const uint32_t part = histogram_serial(data + begin, end - begin, rule, skip_zeros,
                                           temporary ? temporary.get() : &kept, counts, &mutex);
    std::lock_guard<std::mutex> lock(mutex);
    total = std::max(total, part);
  });
  return from_bits(total);
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
