#include "calib/amax_search.h"

#include <c10/macros/Macros.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "calib/mse_levels.h"
#include "util/cpu_isa.h"
#include "util/vector_log.h"

// How the searches stay exact and fast.
//
// entropy: the KL divergence of candidate i needs, per quantized bin, only the total count Q, the
// number c of non-zero source bins and the sum of b*log(b) over its source bins. With prefix sums
// of those three, a candidate costs O(nbins) (one log per merged bin) instead of O(i):
//   N * KL = sum over merged bins with c >= 2 of [sum b*log(b) - Q*log(Q/c)]
//          + S*log(S/N) + (b+T)*log(b+T) - b*log(b) + T*log(S*c'/(N*Q'))   (only when T > 0)
// where N is the total, S the count kept in bins[:i], T = N - S the clipped tail that upstream
// adds to the last kept bin (count b, in merged bin Q', c'). Merged bins with c <= 1 reproduce
// the reference exactly and contribute 0. A candidate with T = 0 whose merged bins each spread
// over equal counts reproduces the reference bit for bit: its divergence is exactly 0 upstream
// too (such plateaus of exact ties are common in sparse histograms; the last one wins).
//
// mse: for amax = c[i] the float32 quantized centres form runs of equal level m, up to the
// clamped tail. A run [a, b) contributes
//   sum counts*(q_m - c)^2 = q_m^2*W - 2*q_m*X + XX
// from prefix sums W, X, XX of counts, counts*c and counts*c^2 (compensated, so a range sum is
// accurate to its own size). Each run end is guessed from the spacing of the centres and checked
// with the exact float32 rounding test (two probes), so a candidate costs O(levels) instead of
// O(num_bins) (mse_levels.cpp; 8 levels a step with AVX-512); when levels outnumber the bins (16
// bits) the non-empty centres are scored one by one instead. Candidates run from the largest amax
// down, and one whose clamped tail alone already exceeds the best score so far (with all error
// margins) is dropped after O(1) work.
//
// Both scores carry an error far below the gaps that usually separate candidates. When the best
// candidates are closer than the error of the fast score plus the error of upstream's own
// arithmetic, those candidates are re-scored exactly as upstream computes them (numpy/scipy
// float64 with numpy's pairwise summation for entropy; PyTorch's float32 elementwise ops and
// cascade sum for mse) and ranked with upstream's tie rule.

namespace torchquant {
namespace calib {
namespace detail {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kDoubleEps = std::numeric_limits<double>::epsilon();  // 2^-52
constexpr double kFloatUlp = 1.0 / (1 << 24);                          // float32 unit roundoff
/// Upstream quantizes everything to 0 when amax <= 2^-24.
constexpr float kZeroAmax = 1.0f / (1 << 24);
/// Entropy candidates whose fast divergences lie within this of the minimum are re-scored with
/// upstream's arithmetic. Both the fast score and upstream's float64 score are accurate to about
/// 1e-13 (nats), so 1e-9 is a wide margin that rarely admits a second candidate.
constexpr double kEntropyTieWindow = 1e-9;
/// Runs of at most this many centres are scored directly rather than from prefix sums.
constexpr int64_t kDirectRun = 4;
/// A level costs about this many centres scored one by one (mse chooses the cheaper way).
constexpr double kLevelCost = 2.0;

[[noreturn]] void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

std::string to_string(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void check_histogram(const char* fn, const HistogramView& h) {
  if (h.num_bins < 0) fail(fn, "num_bins must be >= 0, got " + std::to_string(h.num_bins));
  if (h.num_bins == 0) return;
  if (h.counts == nullptr || h.edges == nullptr) fail(fn, "histogram data is null");
  if (h.num_edges < h.num_bins + 1) {
    fail(fn, "a histogram of " + std::to_string(h.num_bins) + " bins needs at least " +
                 std::to_string(h.num_bins + 1) + " edges, got " + std::to_string(h.num_edges));
  }
  for (int64_t j = 0; j < h.num_bins; ++j) {
    if (h.counts[j] < 0) {
      fail(fn, "counts must be non-negative, got " + std::to_string(h.counts[j]) + " in bin " +
                   std::to_string(j));
    }
  }
}

void check_search(const char* fn, int64_t num_bits, int64_t lowest_bits, int64_t stride,
                  int64_t start_bin) {
  if (num_bits < lowest_bits || num_bits > 16) {
    fail(fn, "num_bits must be in [" + std::to_string(lowest_bits) + ", 16], got " +
                 std::to_string(num_bits));
  }
  if (stride < 1) fail(fn, "stride must be positive, got " + std::to_string(stride));
  if (start_bin < 0) fail(fn, "start_bin must be >= 0, got " + std::to_string(start_bin));
}

HistogramView view_of(const std::vector<int64_t>& counts, const std::vector<float>& edges) {
  return {counts.data(), static_cast<int64_t>(counts.size()), edges.data(),
          static_cast<int64_t>(edges.size())};
}

/// Candidates first, first + stride, ... (count of them): Python's range(start, stop, stride)
/// without the values below `lowest`, or the single `fallback` when that leaves nothing.
struct Candidates {
  int64_t first;
  int64_t stride;
  int64_t count;
  int64_t at(int64_t k) const { return first + k * stride; }
};

Candidates make_candidates(int64_t start, int64_t stop, int64_t stride, int64_t lowest,
                           int64_t fallback) {
  int64_t first = start;
  if (first < lowest) first += (lowest - first + stride - 1) / stride * stride;
  if (first >= stop) return {fallback, 1, 1};
  return {first, stride, (stop - first + stride - 1) / stride};
}

// ---------------------------------------------------------------------------------------------
// Upstream arithmetic, used to rank near-ties.

/// numpy's float64 np.sum of a contiguous array (pairwise summation, 8 accumulators per block of
/// at most 128, started from the identity 0).
double numpy_sum(const double* a, int64_t n) {
  if (n < 8) {
    double r = 0.0;
    for (int64_t k = 0; k < n; ++k) r += a[k];
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    int64_t i = 8;
    for (; i < n - n % 8; i += 8) {
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

/// scipy.special.rel_entr.
double rel_entr(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::quiet_NaN();
  if (x > 0 && y > 0) return x == y ? 0.0 : x * std::log(x / y);
  if (x == 0 && y >= 0) return 0.0;
  return kInf;
}

int64_t ceil_log2(int64_t x) {
  if (x <= 2) return 1;
  int64_t bits = 0;
  for (uint64_t v = static_cast<uint64_t>(x - 1); v != 0; v >>= 1) ++bits;
  return bits;
}

constexpr int kSumIlp = 4;
constexpr int kSumLevels = 4;
/// Lanes of PyTorch's float32 vectors in the CPU sum kernel (AVX2 and default builds; PyTorch
/// does not dispatch its sum to AVX512).
constexpr int kSumLanes = 8;

/// PyTorch's multi_row_sum: `size` rows of kSumIlp vectors of W lanes, summed per (column, lane)
/// with 4-level cascaded accumulators.
template <int W>
void cascade_rows(const float* x, int64_t size, float out[kSumIlp][W]) {
  const int64_t level_power = std::max<int64_t>(4, ceil_log2(size) / kSumLevels);
  const int64_t level_step = int64_t(1) << level_power;
  const int64_t level_mask = level_step - 1;
  float acc[kSumLevels][kSumIlp][W] = {};
  auto add_row = [&](int64_t r) {
    for (int k = 0; k < kSumIlp; ++k) {
      for (int l = 0; l < W; ++l) acc[0][k][l] += x[(r * kSumIlp + k) * W + l];
    }
  };
  int64_t i = 0;
  while (i + level_step <= size) {
    for (int64_t j = 0; j < level_step; ++j, ++i) add_row(i);
    for (int lv = 1; lv < kSumLevels; ++lv) {
      for (int k = 0; k < kSumIlp; ++k) {
        for (int l = 0; l < W; ++l) {
          acc[lv][k][l] += acc[lv - 1][k][l];
          acc[lv - 1][k][l] = 0.0f;
        }
      }
      if ((i & (level_mask << (lv * level_power))) != 0) break;
    }
  }
  for (; i < size; ++i) add_row(i);
  for (int lv = 1; lv < kSumLevels; ++lv) {
    for (int k = 0; k < kSumIlp; ++k) {
      for (int l = 0; l < W; ++l) acc[0][k][l] += acc[lv][k][l];
    }
  }
  for (int k = 0; k < kSumIlp; ++k) {
    for (int l = 0; l < W; ++l) out[k][l] = acc[0][k][l];
  }
}

/// PyTorch's row_sum over `size` vectors of W lanes; returns the W lane sums in `out`.
template <int W>
void row_sum(const float* x, int64_t size, float out[W]) {
  float partial[kSumIlp][W];
  const int64_t size_ilp = size / kSumIlp;
  cascade_rows<W>(x, size_ilp, partial);
  for (int64_t i = size_ilp * kSumIlp; i < size; ++i) {
    for (int l = 0; l < W; ++l) partial[0][l] += x[i * W + l];
  }
  for (int k = 1; k < kSumIlp; ++k) {
    for (int l = 0; l < W; ++l) partial[0][l] += partial[k][l];
  }
  for (int l = 0; l < W; ++l) out[l] = partial[0][l];
}

/// torch.sum of a contiguous float32 CPU tensor, single-threaded (cascade_sum in SumKernel.cpp).
float torch_sum(const float* x, int64_t n) {
  if (n < kSumLanes) {
    float total[1];
    row_sum<1>(x, n, total);
    return 0.0f + total[0];
  }
  const int64_t vectors = n / kSumLanes;
  float lanes[kSumLanes];
  row_sum<kSumLanes>(x, vectors, lanes);
  float total = 0.0f;
  for (int64_t k = vectors * kSumLanes; k < n; ++k) total += x[k];
  for (int l = 0; l < kSumLanes; ++l) total += lanes[l];
  return 0.0f + total;
}

/// Relative error bound of torch_sum over n non-negative terms (each term passes through at most
/// this many float32 additions), plus the division by n in mean().
double torch_mean_error(int64_t n) {
  const int64_t rows = std::max<int64_t>(1, n / kSumLanes / kSumIlp);
  const int64_t level_step = int64_t(1) << std::max<int64_t>(4, ceil_log2(rows) / kSumLevels);
  const int64_t top = rows / (level_step * level_step * level_step) + 1;
  const int64_t depth = 3 * level_step + top + 2 * kSumIlp + 2 * kSumLanes + 8;
  const double g = static_cast<double>(depth) * kFloatUlp;
  return g / (1.0 - g);
}

/// Index of the last minimum of `score` (NaN-free); candidates within `window` of the minimum
/// are ranked by `exact` instead. All infinite: the last index, as numpy's argmin on the
/// reversed array.
template <typename Exact>
int64_t last_min(const std::vector<double>& score, double window, Exact exact) {
  const double best = *std::min_element(score.begin(), score.end());
  if (std::isinf(best)) return static_cast<int64_t>(score.size()) - 1;
  std::vector<int64_t> near;
  for (int64_t k = 0; k < static_cast<int64_t>(score.size()); ++k) {
    if (score[k] <= best + window) near.push_back(k);
  }
  if (near.size() == 1) return near[0];
  int64_t pick = near[0];
  double pick_value = kInf;
  for (int64_t k : near) {
    const double v = exact(k);
    if (v <= pick_value) {
      pick = k;
      pick_value = v;
    }
  }
  return pick;
}

/// Index of the first minimum of upstream's score, given estimates `score` with error bounds
/// `bound`; candidates that could be the minimum are ranked by `exact` (first minimum wins, a NaN
/// counts as the minimum as in numpy's argmin).
template <typename Exact>
int64_t first_min(const std::vector<double>& score, const std::vector<double>& bound, Exact exact) {
  double ceiling = kInf;
  for (size_t k = 0; k < score.size(); ++k) ceiling = std::min(ceiling, score[k] + bound[k]);
  std::vector<int64_t> near;
  for (int64_t k = 0; k < static_cast<int64_t>(score.size()); ++k) {
    if (score[k] - bound[k] <= ceiling) near.push_back(k);
  }
  if (near.empty()) return 0;
  if (near.size() == 1) return near[0];
  int64_t pick = near[0];
  float pick_value = std::numeric_limits<float>::infinity();
  for (int64_t k : near) {
    const float v = exact(k);
    if (std::isnan(v)) return k;
    if (v < pick_value) {
      pick = k;
      pick_value = v;
    }
  }
  return pick;
}

// ---------------------------------------------------------------------------------------------
// Entropy.

class EntropySearch {
 public:
  EntropySearch(const HistogramView& h, int64_t num_bits, bool is_unsigned);
  int64_t total() const { return total_; }
  /// KL divergence of candidate i from prefix sums: NaN when bins[:i] is empty (upstream divides
  /// 0 by 0), +inf when the tail lands in an empty last bin. `*exact` tells whether the value is
  /// exactly upstream's: a candidate that keeps every count and spreads each merged bin over
  /// equal counts reproduces the reference bit for bit, and upstream's divergence is exactly 0.
  double divergence(int64_t i, bool* exact) const;
  /// The divergence as upstream computes it (numpy + scipy.stats.entropy), bit for bit.
  double upstream_divergence(int64_t i) const;

 private:
  int64_t group_start(int64_t k, int64_t i) const { return (k * i + nbins_ - 1) >> shift_; }
  double grouped_excess(int64_t i) const;
  double tail_correction(int64_t i) const;
  bool uniform_groups(int64_t i) const;

  std::vector<int64_t> bins_;
  int64_t total_ = 0;
  int64_t nbins_;
  int shift_;
  std::vector<int64_t> count_prefix_;    // sum of bins[:j]
  std::vector<int64_t> nonzero_prefix_;  // number of non-zero bins in bins[:j]
  std::vector<double> blogb_prefix_;     // sum of b*log(b) over bins[:j]
  std::vector<double> log_int_;          // log(c) for every merged bin size c
  // grouped_excess's scratch (one search runs on one thread): Q and the rest of each term, per
  // merged bin with c >= 2, then log(Q).
  mutable std::vector<double> q_, rest_, log_q_;
  std::vector<int64_t> next_nonzero_;   // first non-zero bin at or after j (num_bins if none)
  std::vector<int64_t> change_prefix_;  // non-zero bins in bins[:j] unlike the previous one
};

EntropySearch::EntropySearch(const HistogramView& h, int64_t num_bits, bool is_unsigned)
    : bins_(h.counts, h.counts + h.num_bins),
      nbins_(int64_t(1) << (num_bits - 1 + is_unsigned)),
      shift_(static_cast<int>(num_bits - 1 + is_unsigned)) {
  if (bins_.size() >= 2) bins_[0] = bins_[1];
  const size_t n = bins_.size();
  count_prefix_.assign(n + 1, 0);
  nonzero_prefix_.assign(n + 1, 0);
  blogb_prefix_.assign(n + 1, 0.0);
  // A merged bin holds at most ceil(i / nbins) <= n / nbins + 1 source bins.
  log_int_.assign(n / nbins_ + 2, 0.0);
  for (size_t c = 1; c < log_int_.size(); ++c) log_int_[c] = std::log(static_cast<double>(c));
  long double blogb = 0.0L;
  for (size_t j = 0; j < n; ++j) {
    const int64_t b = bins_[j];
    if (b > 0) blogb += static_cast<long double>(b) * std::log(static_cast<double>(b));
    count_prefix_[j + 1] = count_prefix_[j] + b;
    nonzero_prefix_[j + 1] = nonzero_prefix_[j] + (b > 0);
    blogb_prefix_[j + 1] = static_cast<double>(blogb);
  }
  total_ = count_prefix_[n];
  next_nonzero_.assign(n + 1, static_cast<int64_t>(n));
  for (size_t j = n; j-- > 0;) next_nonzero_[j] = bins_[j] > 0 ? j : next_nonzero_[j + 1];
  change_prefix_.assign(n + 1, 0);
  int64_t previous = 0;
  for (size_t j = 0; j < n; ++j) {
    const bool change = bins_[j] > 0 && previous > 0 && bins_[j] != previous;
    change_prefix_[j + 1] = change_prefix_[j] + change;
    if (bins_[j] > 0) previous = bins_[j];
  }
}

// Whether every merged bin of candidate i spreads over equal non-zero counts.
bool EntropySearch::uniform_groups(int64_t i) const {
  if (i <= nbins_) return true;  // one source bin per merged bin
  int64_t lo = 0;
  for (int64_t k = 0; k < nbins_; ++k) {
    const int64_t hi = group_start(k + 1, i);
    const int64_t first = next_nonzero_[lo];
    if (first + 1 < hi && change_prefix_[hi] != change_prefix_[first + 1]) return false;
    lo = hi;
  }
  return true;
}

// Sum over merged bins of [sum b*log(b) - Q*log(Q/c)] (merged bins with c <= 1 give 0). The logs
// of Q, half of the whole search's time, are taken together by detail::log_n (a vector log within
// a few ulp: far inside kEntropyTieWindow, which re-scores near ties exactly).
double EntropySearch::grouped_excess(int64_t i) const {
  q_.resize(static_cast<size_t>(nbins_));
  rest_.resize(static_cast<size_t>(nbins_));
  log_q_.resize(static_cast<size_t>(nbins_));
  int64_t m = 0;
  int64_t lo = 0;
  for (int64_t k = 0; k < nbins_; ++k) {
    const int64_t hi = group_start(k + 1, i);
    const int64_t c = nonzero_prefix_[hi] - nonzero_prefix_[lo];
    if (c >= 2) {
      const double q = static_cast<double>(count_prefix_[hi] - count_prefix_[lo]);
      q_[m] = q;
      rest_[m] = (blogb_prefix_[hi] - blogb_prefix_[lo]) + q * log_int_[c];
      ++m;
    }
    lo = hi;
  }
  torchquant::detail::log_n(q_.data(), log_q_.data(), m);
  double excess = 0.0;
  for (int64_t j = 0; j < m; ++j) excess += rest_[j] - q_[j] * log_q_[j];
  return excess;
}

// The terms of N*KL that the clipped tail T = N - S adds (T > 0, last kept bin non-empty).
double EntropySearch::tail_correction(int64_t i) const {
  const double n = static_cast<double>(total_);
  const double s = static_cast<double>(count_prefix_[i]);
  const double t = n - s;
  const double b = static_cast<double>(bins_[i - 1]);
  // The merged bin that holds source bin i - 1.
  const int64_t lo = group_start(((i - 1) << shift_) / i, i);
  const double q = static_cast<double>(count_prefix_[i] - count_prefix_[lo]);
  const double c = static_cast<double>(nonzero_prefix_[i] - nonzero_prefix_[lo]);
  return s * std::log(s / n) + (b + t) * std::log(b + t) - b * std::log(b) +
         t * std::log((s * c) / (n * q));
}

double EntropySearch::divergence(int64_t i, bool* exact) const {
  *exact = false;
  const int64_t kept = count_prefix_[i];
  if (kept == 0) return std::numeric_limits<double>::quiet_NaN();
  const int64_t tail = total_ - kept;
  if (tail == 0 && uniform_groups(i)) {
    *exact = true;
    return 0.0;
  }
  if (tail > 0 && bins_[i - 1] == 0) return kInf;
  double n_kl = i > nbins_ ? grouped_excess(i) : 0.0;
  if (tail > 0) n_kl += tail_correction(i);
  return n_kl / static_cast<double>(total_);
}

double EntropySearch::upstream_divergence(int64_t i) const {
  const double n = static_cast<double>(total_);
  std::vector<double> p(i), q(i);
  // Candidate: each merged count spread over its non-zero source bins.
  int64_t lo = 0;
  if (i <= nbins_) {  // one source bin per merged bin
    for (int64_t j = 0; j < i; ++j) q[j] = static_cast<double>(bins_[j]);
    lo = i;
  }
  for (int64_t k = 0; k < nbins_ && lo < i; ++k) {
    const int64_t hi = group_start(k + 1, i);
    if (hi == lo) continue;
    const int64_t c = nonzero_prefix_[hi] - nonzero_prefix_[lo];
    const double spread =
        c > 0 ? static_cast<double>(count_prefix_[hi] - count_prefix_[lo]) / static_cast<double>(c)
              : 0.0;
    for (int64_t j = lo; j < hi; ++j) q[j] = bins_[j] > 0 ? spread : 0.0;
    lo = hi;
  }
  // Reference: the clipped tail added to the last kept bin.
  for (int64_t j = 0; j < i; ++j) p[j] = static_cast<double>(bins_[j]) / n;
  p[i - 1] = static_cast<double>(bins_[i - 1] + total_ - count_prefix_[i]) / n;
  const double q_total = numpy_sum(q.data(), i);
  for (int64_t j = 0; j < i; ++j) p[j] = rel_entr(p[j], q[j] / q_total);
  return numpy_sum(p.data(), i);
}

// ---------------------------------------------------------------------------------------------
// MSE.

void compensated_add(double* hi, double* lo, double v) {
  const double s = *hi + v;
  const double vv = s - *hi;
  *lo += (*hi - (s - vv)) + (v - vv);
  *hi = s;
}

/// Round half to even: torch.round, i.e. std::nearbyint in the default rounding mode, without a
/// libm call (adding and removing 2^23 rounds a float below 2^23 to an integer).
inline float round_half_even(float y) {
  constexpr float kTwo23 = 8388608.0f;
  const float a = std::fabs(y);
  if (!(a < kTwo23)) return y;  // already an integer, or NaN / inf
  return std::copysign((a + kTwo23) - kTwo23, y);
}

class MseSearch {
 public:
  MseSearch(const HistogramView& h, int64_t num_bits, bool is_unsigned);
  MseSearch(const MseSearch&) = delete;  // grid_ points into the vectors
  MseSearch& operator=(const MseSearch&) = delete;
  float center(int64_t i) const { return centers_[i]; }
  /// sum of counts*(q - c)^2 for amax = centre i, with a bound on its error in `*bound`; or
  /// +inf (bound 0) as soon as the clamped tail alone shows that upstream's score, known to
  /// `relative` error, exceeds `ceiling`.
  double score(int64_t i, double ceiling, double relative, double* bound) const;
  /// Upstream's float32 mean((q - c)^2 * counts), bit for bit.
  float upstream_score(int64_t i) const;

 private:
  float level(float x, float scale) const {
    return std::min(std::max(round_half_even(x * scale), min_bound_), max_bound_);
  }
  double per_centre_sum(int64_t end, float scale, double* bound) const;
  double per_level_sum(float first, int64_t end, float scale, double* bound) const;
  double run_score(int64_t begin, int64_t end, double q, double* bound) const;
  /// sum of counts*c^2 over centres [begin, end).
  double xx_range(int64_t begin, int64_t end) const {
    return (prefix_xx_hi_[end] - prefix_xx_hi_[begin]) +
           (prefix_xx_lo_[end] - prefix_xx_lo_[begin]);
  }

  int64_t n_;
  float max_bound_;
  float min_bound_;
  std::vector<float> centers_;
  std::vector<float> probe_;             // -inf, centres, +inf
  std::vector<float> weights_;           // counts as float32, as upstream
  std::vector<int64_t> nonzero_;         // the bins with a count, in order
  std::vector<int64_t> nonzero_before_;  // how many of them precede bin j
  // Prefix sums of counts, counts*c and counts*c^2, the last two compensated (hi + lo); one
  // array each, as level_sums gathers them.
  std::vector<double> prefix_w_, prefix_x_hi_, prefix_x_lo_, prefix_xx_hi_, prefix_xx_lo_;
  LevelGrid grid_;
  torchquant::detail::CpuIsa isa_;
};

MseSearch::MseSearch(const HistogramView& h, int64_t num_bits, bool is_unsigned)
    : n_(h.num_bins),
      max_bound_(
          static_cast<float>(std::ldexp(1.0, static_cast<int>(num_bits - 1 + is_unsigned)) - 1.0)),
      min_bound_(is_unsigned ? 0.0f : -max_bound_),
      centers_(n_),
      probe_(n_ + 2),
      weights_(n_),
      nonzero_before_(n_ + 1, 0),
      prefix_w_(n_ + 1),
      prefix_x_hi_(n_ + 1),
      prefix_x_lo_(n_ + 1),
      prefix_xx_hi_(n_ + 1),
      prefix_xx_lo_(n_ + 1),
      isa_(torchquant::detail::cpu_isa()) {
  for (int64_t j = 0; j < n_; ++j) {
    centers_[j] = (h.edges[j + 1] + h.edges[j]) / 2.0f;
    weights_[j] = static_cast<float>(h.counts[j]);
    if (h.counts[j] > 0) nonzero_.push_back(j);
    nonzero_before_[j + 1] = static_cast<int64_t>(nonzero_.size());
    const double w = weights_[j];
    const double c = centers_[j];
    prefix_w_[j + 1] = prefix_w_[j] + w;
    prefix_x_hi_[j + 1] = prefix_x_hi_[j];
    prefix_x_lo_[j + 1] = prefix_x_lo_[j];
    compensated_add(&prefix_x_hi_[j + 1], &prefix_x_lo_[j + 1], w * c);
    prefix_xx_hi_[j + 1] = prefix_xx_hi_[j];
    prefix_xx_lo_[j + 1] = prefix_xx_lo_[j];
    compensated_add(&prefix_xx_hi_[j + 1], &prefix_xx_lo_[j + 1], (w * c) * c);
  }
  std::copy(centers_.begin(), centers_.end(), probe_.begin() + 1);
  probe_.front() = -std::numeric_limits<float>::infinity();
  probe_.back() = std::numeric_limits<float>::infinity();
  grid_.probe = probe_.data();
  grid_.w = prefix_w_.data();
  grid_.x_hi = prefix_x_hi_.data();
  grid_.x_lo = prefix_x_lo_.data();
  grid_.n = n_;
  grid_.first_centre = centers_[0];
  const double span = static_cast<double>(centers_[n_ - 1]) - grid_.first_centre;
  if (n_ > 1 && span > 0 && std::isfinite(span)) {
    grid_.inv_spacing = static_cast<double>(n_ - 1) / span;
  }
}

// Centres [begin, end) all quantized to q.
double MseSearch::run_score(int64_t begin, int64_t end, double q, double* bound) const {
  if (end - begin <= kDirectRun) {
    double sum = 0.0;
    for (int64_t j = begin; j < end; ++j) {
      const double d = q - static_cast<double>(centers_[j]);
      sum += static_cast<double>(weights_[j]) * (d * d);
    }
    *bound += 8.0 * kDoubleEps * sum;
    return sum;
  }
  const double w = prefix_w_[end] - prefix_w_[begin];
  const double x =
      (prefix_x_hi_[end] - prefix_x_hi_[begin]) + (prefix_x_lo_[end] - prefix_x_lo_[begin]);
  const double xx = xx_range(begin, end);
  const double qqw = q * q * w;
  const double qx = 2.0 * q * x;
  *bound += 8.0 * kDoubleEps * (qqw + std::fabs(qx) + xx);
  return qqw - qx + xx;
}

// Centres [0, end) (none clamped at max_bound) one by one, skipping empty bins: when levels
// outnumber the centres.
double MseSearch::per_centre_sum(int64_t end, float scale, double* bound) const {
  double sum = 0.0;
  const int64_t count = nonzero_before_[end];
  for (int64_t k = 0; k < count; ++k) {
    const int64_t j = nonzero_[k];
    const float q = std::max(round_half_even(centers_[j] * scale), min_bound_) / scale;
    const double d = static_cast<double>(q) - static_cast<double>(centers_[j]);
    sum += static_cast<double>(weights_[j]) * (d * d);
  }
  *bound += static_cast<double>(count + 4) * kDoubleEps * sum;
  return sum;
}

// Centres [0, end) (none clamped at max_bound) level by level, from the level `first` of centre
// 0: sum over levels of q^2*W - 2*q*X, plus XX of the whole range.
double MseSearch::per_level_sum(float first, int64_t end, float scale, double* bound) const {
  const LevelSums sums = level_sums(isa_, grid_, first, max_bound_, end, scale);
  const double qqw = sums.qqw, qx = sums.qx, qx_size = sums.qx_size;
  const double xx = xx_range(0, end);
  const double levels = static_cast<double>(max_bound_ - first) + 8.0;
  *bound += 2.0 * levels * kDoubleEps * (qqw + 2.0 * qx_size + xx);
  return qqw - 2.0 * qx + xx;
}

double MseSearch::score(int64_t i, double ceiling, double relative, double* bound) const {
  *bound = 0.0;
  const float amax = centers_[i];
  if (!(amax > kZeroAmax)) return run_score(0, n_, 0.0, bound);  // everything quantizes to 0
  const float scale = max_bound_ / amax;
  const double clamped_q = static_cast<double>(max_bound_ / scale);
  const float first = level(centers_[0], scale);
  if (!(first < max_bound_)) return run_score(0, n_, clamped_q, bound);
  const int64_t clamp_from =
      level_boundary(grid_, max_bound_, scale, grid_.guess(max_bound_, scale));
  const double tail = run_score(clamp_from, n_, clamped_q, bound);
  if ((tail - *bound) * (1.0 - relative) > ceiling) {
    *bound = 0.0;
    return kInf;
  }
  const double levels = static_cast<double>(max_bound_ - first);
  const double inside = levels * kLevelCost > static_cast<double>(nonzero_before_[clamp_from])
                            ? per_centre_sum(clamp_from, scale, bound)
                            : per_level_sum(first, clamp_from, scale, bound);
  return inside + tail;
}

float MseSearch::upstream_score(int64_t i) const {
  const float amax = centers_[i];
  const bool zero = amax <= kZeroAmax;
  const float scale = zero ? 0.0f : max_bound_ / amax;
  std::vector<float> terms(n_);
  for (int64_t j = 0; j < n_; ++j) {
    const float q = zero ? 0.0f : level(centers_[j], scale) / scale;
    const float d = q - centers_[j];
    const float d2 = d * d;
    terms[j] = d2 * weights_[j];
  }
  return torch_sum(terms.data(), n_) / static_cast<float>(n_);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

float entropy_amax(const HistogramView& hist, int64_t num_bits, bool is_unsigned, int64_t stride,
                   int64_t start_bin) {
  static const char* kFn = "entropy_amax";
  check_search(kFn, num_bits, 1, stride, start_bin);
  check_histogram(kFn, hist);
  const int64_t n = hist.num_bins;
  if (n == 0) return kNaN;
  const EntropySearch search(hist, num_bits, is_unsigned);
  if (search.total() == 0) return kNaN;
  const Candidates cand = make_candidates(start_bin, n + 1, stride, 1, n);
  std::vector<double> divergence(cand.count);
  std::vector<char> exact(cand.count);
  int64_t last_nan = -1;
  for (int64_t k = 0; k < cand.count; ++k) {
    bool is_exact = false;
    divergence[k] = search.divergence(cand.at(k), &is_exact);
    exact[k] = is_exact;
    if (std::isnan(divergence[k])) last_nan = k;
  }
  if (last_nan >= 0) return hist.edges[cand.at(last_nan)];  // numpy's argmin picks NaN
  const int64_t best = last_min(divergence, kEntropyTieWindow, [&](int64_t k) {
    return exact[k] ? divergence[k] : search.upstream_divergence(cand.at(k));
  });
  return hist.edges[cand.at(best)];
}

float entropy_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
                   int64_t num_bits, bool is_unsigned, int64_t stride, int64_t start_bin) {
  return entropy_amax(view_of(counts, edges), num_bits, is_unsigned, stride, start_bin);
}

float mse_amax(const HistogramView& hist, int64_t num_bits, bool is_unsigned, int64_t stride,
               int64_t start_bin) {
  static const char* kFn = "mse_amax";
  check_search(kFn, num_bits, is_unsigned ? 1 : 2, stride, start_bin);
  check_histogram(kFn, hist);
  const int64_t n = hist.num_bins;
  if (n == 0) return kNaN;
  int64_t total = 0;
  for (int64_t j = 0; j < n; ++j) total += hist.counts[j];
  if (total == 0) return kNaN;
  const MseSearch search(hist, num_bits, is_unsigned);
  const Candidates cand = make_candidates(start_bin, n, stride, 0, n - 1);
  // From the largest amax down, skipping candidates whose clamped tail alone rules them out.
  const double relative = torch_mean_error(n);
  std::vector<double> score(cand.count), bound(cand.count);
  double ceiling = kInf;
  for (int64_t k = cand.count - 1; k >= 0; --k) {
    double fast_error = 0.0;
    score[k] = search.score(cand.at(k), ceiling, relative, &fast_error);
    bound[k] = fast_error + relative * (std::fabs(score[k]) + fast_error);
    if (std::isinf(score[k])) bound[k] = 0.0;
    ceiling = std::min(ceiling, score[k] + bound[k]);
  }
  const int64_t best =
      first_min(score, bound, [&](int64_t k) { return search.upstream_score(cand.at(k)); });
  return search.center(cand.at(best));
}

float mse_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
               int64_t num_bits, bool is_unsigned, int64_t stride, int64_t start_bin) {
  return mse_amax(view_of(counts, edges), num_bits, is_unsigned, stride, start_bin);
}

float percentile_amax(const HistogramView& hist, double percentile) {
  static const char* kFn = "percentile_amax";
  if (!(percentile >= 0.0 && percentile <= 100.0)) {
    fail(kFn, "percentile must be in [0, 100], got " + to_string(percentile));
  }
  check_histogram(kFn, hist);
  const int64_t n = hist.num_bins;
  int64_t total = 0;
  for (int64_t j = 0; j < n; ++j) total += hist.counts[j];
  if (total == 0) return kNaN;
  const double target = percentile / 100.0;
  const double denom = static_cast<double>(total);
  double cdf = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    cdf += static_cast<double>(hist.counts[j]) / denom;
    if (cdf >= target) return hist.edges[j];
  }
  return hist.edges[n];
}

float percentile_amax(const std::vector<int64_t>& counts, const std::vector<float>& edges,
                      double percentile) {
  return percentile_amax(view_of(counts, edges), percentile);
}

}  // namespace detail
}  // namespace calib
}  // namespace torchquant
