#pragma once
// Peak CPU memory of a code region: a c10::Allocator that forwards to LibTorch's default CPU
// allocator and counts the bytes that are live. Installed with c10::SetCPUAllocator, it sees every
// tensor ATen allocates on the CPU (oneDNN's private scratch buffers are not tensors and are not
// counted, for the float and the quantized model alike).

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace torchquant {
namespace bench {

class TrackingAllocator final : public c10::Allocator {
 public:
  /// Installs the tracker as LibTorch's CPU allocator (once per process) and returns it.
  static TrackingAllocator& install() {
    static TrackingAllocator* tracker = [] {
      auto* t = new TrackingAllocator(c10::GetDefaultCPUAllocator());
      c10::SetCPUAllocator(t, /*priority=*/100);
      return t;
    }();
    return *tracker;
  }

  // Simple data pointers (data == context, as LibTorch's raw_allocate requires): a 64-byte header
  // before the data keeps the size and the inner allocation, and keeps the 64-byte alignment.
  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = base_->allocate(n + kHeader);
    auto* header = static_cast<Header*>(inner.get());
    header->size = n;
    header->deleter = inner.get_deleter();
    header->owner = this;
    header->inner = inner.release_context();
    void* data = static_cast<char*>(static_cast<void*>(header)) + kHeader;
    const int64_t now = live_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &TrackingAllocator::free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &TrackingAllocator::free; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    base_->copy_data(dest, src, count);
  }

  /// Bytes live now.
  int64_t live() const { return live_.load(); }
  /// Restarts peak tracking from the bytes live now.
  void reset_peak() { peak_.store(live_.load()); }
  /// The most bytes live since reset_peak().
  int64_t peak() const { return peak_.load(); }

 private:
  struct Header {
    size_t size;
    c10::DeleterFnPtr deleter;
    TrackingAllocator* owner;
    void* inner;
  };
  static constexpr size_t kHeader = 64;
  static_assert(sizeof(Header) <= kHeader, "header too large");

  explicit TrackingAllocator(c10::Allocator* base) : base_(base) {}

  static void free(void* data) {
    if (data == nullptr) return;
    auto* header = reinterpret_cast<Header*>(static_cast<char*>(data) - kHeader);
    header->owner->live_.fetch_sub(static_cast<int64_t>(header->size));
    if (header->deleter != nullptr) header->deleter(header->inner);
  }

  c10::Allocator* base_;
  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> peak_{0};
};

}  // namespace bench
}  // namespace torchquant
