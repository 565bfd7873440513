#include "calib/histogram_merge.h"

#include <algorithm>
#include <cmath>

namespace torchquant {
namespace calib {
namespace detail {
namespace {

bool is_prefix(const std::vector<float>& shorter, const std::vector<float>& longer) {
  return shorter.size() <= longer.size() &&
         std::equal(shorter.begin(), shorter.end(), longer.begin());
}

// Extends `h`'s grid (same width, float32 steps as the collection rule) to cover `top`.
void grow_to(HistogramState* h, float top) {
  const float width = h->edges[1] - h->edges[0];
  while (h->edges.back() < top) {
    h->edges.push_back(static_cast<float>(static_cast<double>(h->edges.size()) * width));
    h->counts.push_back(0);
  }
  h->num_bins = std::max<int64_t>(h->num_bins, static_cast<int64_t>(h->counts.size()));
}

void add_rebinned(HistogramState* into, const HistogramState& other) {
  grow_to(into, other.edges[other.counts.size()]);
  const float width = into->edges[1] - into->edges[0];
  const auto last = static_cast<int64_t>(into->counts.size()) - 1;
  for (size_t i = 0; i < other.counts.size(); ++i) {
    const float centre = 0.5f * (other.edges[i] + other.edges[i + 1]);
    const auto bin = std::min(last, static_cast<int64_t>(centre / width));
    into->counts[static_cast<size_t>(bin)] += other.counts[i];
  }
}

}  // namespace

void merge_histogram(HistogramState* into, const HistogramState& other) {
  if (other.edges.empty()) {
    if (into->edges.empty()) {
      into->pending_zeros += other.pending_zeros;
    } else {
      into->counts[0] += other.pending_zeros;
    }
    return;
  }
  if (into->edges.empty()) {
    const int64_t zeros = into->pending_zeros;
    *into = other;
    into->counts[0] += zeros;
    return;
  }
  if (is_prefix(into->edges, other.edges) || is_prefix(other.edges, into->edges)) {
    if (other.edges.size() > into->edges.size()) {
      into->edges = other.edges;
      into->counts.resize(other.counts.size(), 0);
    }
    for (size_t i = 0; i < other.counts.size(); ++i) into->counts[i] += other.counts[i];
    into->num_bins = std::max(into->num_bins, other.num_bins);
    return;
  }
  // Different grids: re-bin the finer histogram onto the coarser one.
  const float into_width = into->edges[1] - into->edges[0];
  const float other_width = other.edges[1] - other.edges[0];
  if (other_width > into_width) {
    HistogramState finer = *into;
    *into = other;
    add_rebinned(into, finer);
  } else {
    add_rebinned(into, other);
  }
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
