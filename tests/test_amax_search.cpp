// The histogram amax searches (src/calib/amax_search): pytorch_quantization 2.2.1's
// _compute_amax_entropy / _mse / _percentile, bit for bit, on the e_hist_calib reference
// histograms and against literal ports of the Python loops on random histograms.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "calib/amax_search.h"
#include "reference.h"
#include "test_helpers.h"
#include "util/cpu_isa.h"
#include "util/vector_log.h"

namespace torchquant {
namespace {

using calib::detail::entropy_amax;
using calib::detail::mse_amax;
using calib::detail::percentile_amax;
using testing::RefCase;

// ---------------------------------------------------------------------------------------------
// Literal ports of the Python code: one pass over the histogram per candidate, numpy / scipy /
// torch arithmetic step by step. Slow; the reference the fast searches are held to.
namespace literal {

// np.sum of a float64 array (numpy's pairwise summation).
double np_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.0;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    std::array<double, 8> r;
    for (size_t k = 0; k < 8; ++k) r[k] = a[k];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (size_t k = 0; k < 8; ++k) r[k] += a[i + k];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return np_sum(a, n2) + np_sum(a + n2, n - n2);
}

// scipy.special.rel_entr.
double rel_entr(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::quiet_NaN();
  if (x > 0 && y > 0) return x * std::log(x / y);
  if (x == 0 && y >= 0) return 0.0;
  return std::numeric_limits<double>::infinity();
}

// torch.sum of a contiguous float32 CPU tensor on one thread (SumKernel.cpp cascade_sum with
// 8-lane vectors): rows of 4 vectors summed with 4 levels of accumulators, then the leftovers.
float torch_sum(const std::vector<float>& x) {
  constexpr int kLanes = 8;
  using Vec = std::array<float, kLanes>;
  const int64_t n = static_cast<int64_t>(x.size());
  const int width = n >= kLanes ? kLanes : 1;
  const int64_t loads = n / width;
  auto load = [&](int64_t idx) {
    Vec v{};
    for (int l = 0; l < width; ++l) v[l] = x[idx * width + l];
    return v;
  };
  auto add = [](Vec& a, const Vec& b) {
    for (int l = 0; l < kLanes; ++l) a[l] += b[l];
  };
  const int64_t rows = loads / 4;
  int64_t ceil_log2 = 1;
  if (rows > 2) {
    ceil_log2 = 0;
    for (uint64_t v = static_cast<uint64_t>(rows - 1); v != 0; v >>= 1) ++ceil_log2;
  }
  const int64_t level_power = std::max<int64_t>(4, ceil_log2 / 4);
  const int64_t level_step = int64_t(1) << level_power;
  const int64_t level_mask = level_step - 1;
  Vec acc[4][4] = {};
  int64_t i = 0;
  while (i + level_step <= rows) {
    for (int64_t j = 0; j < level_step; ++j, ++i) {
      for (int k = 0; k < 4; ++k) add(acc[0][k], load(i * 4 + k));
    }
    for (int64_t j = 1; j < 4; ++j) {
      for (int k = 0; k < 4; ++k) {
        add(acc[j][k], acc[j - 1][k]);
        acc[j - 1][k] = Vec{};
      }
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < rows; ++i) {
    for (int k = 0; k < 4; ++k) add(acc[0][k], load(i * 4 + k));
  }
  for (int j = 1; j < 4; ++j) {
    for (int k = 0; k < 4; ++k) add(acc[0][k], acc[j][k]);
  }
  for (int64_t r = rows * 4; r < loads; ++r) add(acc[0][0], load(r));
  for (int k = 1; k < 4; ++k) add(acc[0][0], acc[0][k]);
  if (width == 1) return 0.0f + acc[0][0][0];
  float total = 0.0f;
  for (int64_t k = loads * kLanes; k < n; ++k) total += x[k];
  for (int l = 0; l < kLanes; ++l) total += acc[0][0][l];
  return 0.0f + total;
}

// numpy's argmin: the first minimum, or the first NaN.
size_t np_argmin(const std::vector<double>& v) {
  size_t best = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    if (std::isnan(v[k])) return k;
    if (v[k] < v[best]) best = k;
  }
  return best;
}

// range(start, stop, stride) without the values below `lowest`, or {fallback} if that is empty
// (the documented torchquant behaviour where upstream's loop is empty and it crashes).
std::vector<int64_t> candidates(int64_t start, int64_t stop, int64_t stride, int64_t lowest,
                                int64_t fallback) {
  std::vector<int64_t> c;
  for (int64_t i = start; i < stop; i += stride) {
    if (i >= lowest) c.push_back(i);
  }
  if (c.empty()) c.push_back(fallback);
  return c;
}

float entropy(const std::vector<int64_t>& counts, const std::vector<float>& edges, int num_bits,
              bool is_unsigned, int64_t stride, int64_t start_bin) {
  std::vector<int64_t> bins = counts;
  if (bins.size() >= 2) bins[0] = bins[1];
  const int64_t n = static_cast<int64_t>(bins.size());
  const int64_t nbins = int64_t(1) << (num_bits - 1 + (is_unsigned ? 1 : 0));
  const std::vector<int64_t> cand = candidates(start_bin, n + 1, stride, 1, n);
  std::vector<double> divergences;
  for (int64_t i : cand) {
    std::vector<double> space(nbins + 1);  // np.linspace(0, i, nbins + 1)
    const double step = static_cast<double>(i) / static_cast<double>(nbins);
    for (int64_t k = 0; k <= nbins; ++k) space[k] = static_cast<double>(k) * step;
    space[nbins] = static_cast<double>(i);
    std::vector<int64_t> digitized(i);  // np.digitize(range(i), space) - 1, -1 for empty bins
    for (int64_t j = 0; j < i; ++j) {
      digitized[j] =
          (std::upper_bound(space.begin(), space.end(), static_cast<double>(j)) - space.begin()) -
          1;
      if (bins[j] == 0) digitized[j] = -1;
    }
    std::vector<double> new_density_counts(nbins, 0.0);
    std::vector<int64_t> counter(nbins, 0);
    for (int64_t j = 0; j < i; ++j) {
      if (digitized[j] == -1) continue;
      new_density_counts[digitized[j]] += static_cast<double>(bins[j]);
      ++counter[digitized[j]];
    }
    for (int64_t k = 0; k < nbins; ++k) {
      if (counter[k] > 0) new_density_counts[k] /= static_cast<double>(counter[k]);
    }
    std::vector<double> new_density(i, 0.0);
    for (int64_t j = 0; j < i; ++j) {
      if (digitized[j] != -1) new_density[j] = new_density_counts[digitized[j]];
    }
    std::vector<int64_t> reference(bins.begin(), bins.begin() + i);
    for (int64_t j = i; j < n; ++j) reference[i - 1] += bins[j];
    // scipy.stats.entropy(reference, new_density)
    int64_t reference_sum = 0;
    for (int64_t v : reference) reference_sum += v;
    const double new_sum = np_sum(new_density.data(), new_density.size());
    std::vector<double> vec(i);
    for (int64_t j = 0; j < i; ++j) {
      vec[j] = rel_entr(static_cast<double>(reference[j]) / static_cast<double>(reference_sum),
                        new_density[j] / new_sum);
    }
    divergences.push_back(np_sum(vec.data(), vec.size()));
  }
  const std::vector<double> reversed(divergences.rbegin(), divergences.rend());
  return edges[cand[divergences.size() - 1 - np_argmin(reversed)]];
}

float mse(const std::vector<int64_t>& hist, const std::vector<float>& edges, int num_bits,
          bool is_unsigned, int64_t stride, int64_t start_bin) {
  const int64_t n = static_cast<int64_t>(hist.size());
  std::vector<float> counts(n), centers(n);
  for (int64_t j = 0; j < n; ++j) {
    counts[j] = static_cast<float>(hist[j]);
    centers[j] = (edges[j + 1] + edges[j]) / 2.0f;
  }
  const float max_bound =
      static_cast<float>(std::pow(2.0, num_bits - 1 + (is_unsigned ? 1 : 0)) - 1.0);
  const float min_bound = is_unsigned ? 0.0f : -max_bound;
  const std::vector<int64_t> cand = candidates(start_bin, n, stride, 0, n - 1);
  std::vector<double> mses;
  for (int64_t i : cand) {
    // fake_tensor_quant(centers, amax, num_bits, unsigned), narrow range, CPU float32.
    const float amax = centers[i];
    const bool zero_amax = amax <= 1.0f / (1 << 24);
    const float scale = zero_amax ? 0.0f : max_bound / amax;
    std::vector<float> terms(n);
    for (int64_t j = 0; j < n; ++j) {
      float out = std::nearbyint(centers[j] * scale);
      out = std::min(std::max(out, min_bound), max_bound);
      const float q = out / (zero_amax ? 1.0f : scale);
      const float d = q - centers[j];
      const float d2 = d * d;
      terms[j] = d2 * counts[j];
    }
    mses.push_back(torch_sum(terms) / static_cast<float>(n));  // .mean()
  }
  return centers[cand[np_argmin(mses)]];
}

float percentile(const std::vector<int64_t>& hist, const std::vector<float>& edges, double p) {
  int64_t total = 0;
  for (int64_t v : hist) total += v;
  std::vector<double> cdf(hist.size());
  double run = 0.0;
  for (size_t j = 0; j < hist.size(); ++j) {
    run += static_cast<double>(hist[j]) / static_cast<double>(total);
    cdf[j] = run;
  }
  return edges[std::lower_bound(cdf.begin(), cdf.end(), p / 100.0) - cdf.begin()];
}

}  // namespace literal

// ---------------------------------------------------------------------------------------------
// Reference histograms.

std::vector<int64_t> counts_of(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<float> edges_of(const at::Tensor& t) {
  const at::Tensor e = t.to(at::kFloat).contiguous();
  return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
}

std::vector<RefCase> histogram_cases() {
  std::vector<RefCase> out;
  for (const RefCase& c : testing::reference_cases("e_hist_calib")) {
    if (c.has("hist_after_b2")) out.push_back(c);
  }
  return out;
}

class AmaxSearchRef : public ::testing::TestWithParam<RefCase> {};

// Every method of every case on the final histogram, in upstream's order. The torch path hands
// the searches a fresh copy of the counts; the numpy path (torch_hist=False) lets entropy write
// bins[0] = bins[1] into the stored histogram, which the later percentile then reads: that
// mutated histogram is hist_after_all_methods. Everything else of the numpy path (its own
// collection rules) lives in the stored histograms, so the searches match it too.
TEST_P(AmaxSearchRef, MatchesPytorchQuantization) {
  const RefCase& c = GetParam();
  const auto& p = c.meta["params"];
  const int64_t num_bits = p["num_bits"].get<int64_t>();
  const bool is_unsigned = p["unsigned"].get<bool>();
  const bool numpy_path = !p["torch_hist"].get<bool>();
  const std::vector<float> edges = edges_of(c.tensor("edges_after_b2"));
  const std::vector<int64_t> hist = counts_of(c.tensor("hist_after_b2"));
  const std::vector<int64_t> mutated = counts_of(c.tensor("hist_after_all_methods"));
  bool entropy_ran = false;
  for (const auto& m : p["methods_in_order"]) {
    const std::string role = m["role"].get<std::string>();
    const std::string method = m["method"].get<std::string>();
    const int64_t stride = m["stride"].get<int64_t>();
    const int64_t start_bin = m["start_bin"].get<int64_t>();
    const std::vector<int64_t>& counts = numpy_path && entropy_ran ? mutated : hist;
    float amax = 0.0f;
    if (method == "entropy") {
      amax = entropy_amax(counts, edges, num_bits, is_unsigned, stride, start_bin);
      entropy_ran = true;
    } else if (method == "mse") {
      amax = mse_amax(counts, edges, num_bits, is_unsigned, stride, start_bin);
    } else {
      amax = percentile_amax(counts, edges, m["percentile"].get<double>());
    }
    EXPECT_EQ(amax, c.tensor(role).item<float>()) << c.name << " " << role;
  }
}

std::string param_name(const ::testing::TestParamInfo<RefCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Group, AmaxSearchRef, ::testing::ValuesIn(histogram_cases()), param_name);

// ---------------------------------------------------------------------------------------------
// Random histograms against the literal ports.

struct TestHistogram {
  std::vector<int64_t> counts;
  std::vector<float> edges;
};

// n bins over [0, top) of one of several shapes: |gaussian|, uniform, exponential, sparse, a few
// spikes, flat up to some bin then empty, bimodal, nothing in the low bins.
TestHistogram random_histogram(std::mt19937_64& rng, int64_t n, int shape) {
  TestHistogram h{std::vector<int64_t>(n, 0), std::vector<float>(n + 1)};
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::exponential_distribution<double> expo(1.0);
  const double top = std::exp(6.0 * unit(rng) - 3.0);
  for (int64_t j = 0; j <= n; ++j) h.edges[j] = static_cast<float>(j * (top / n));
  const int64_t samples = static_cast<int64_t>(std::exp(unit(rng) * std::log(5e4))) + 1;
  auto put = [&](double x) {  // x in [0, 1]
    h.counts[std::min<int64_t>(n - 1, std::max<int64_t>(0, static_cast<int64_t>(x * n)))] += 1;
  };
  switch (shape) {
    case 0:
      for (int64_t s = 0; s < samples; ++s) put(std::fabs(gauss(rng)) / 4.5);
      break;
    case 1:
      for (int64_t s = 0; s < samples; ++s) put(unit(rng));
      break;
    case 2:
      for (int64_t s = 0; s < samples; ++s) put(expo(rng) / 8.0);
      break;
    case 3:
      for (int64_t k = 1 + static_cast<int64_t>(rng() % (n / 8 + 1)); k > 0; --k) {
        h.counts[rng() % n] += 1 + static_cast<int64_t>(rng() % 1000);
      }
      break;
    case 4:
      for (int64_t s = 0; s < samples; ++s) put(std::fabs(gauss(rng)) / 6.0);
      for (int k = 0; k < 3; ++k) h.counts[rng() % n] += 1 + static_cast<int64_t>(rng() % 100000);
      break;
    case 5: {
      const int64_t value = 1 + static_cast<int64_t>(rng() % 1000);
      std::fill(h.counts.begin(), h.counts.begin() + 1 + static_cast<int64_t>(rng() % n), value);
      break;
    }
    case 6:
      for (int64_t s = 0; s < samples; ++s) {
        put(unit(rng) < 0.7 ? std::fabs(gauss(rng)) * 0.1 : 0.6 + 0.05 * gauss(rng));
      }
      break;
    default:
      for (int64_t s = 0; s < samples; ++s) put(0.75 + 0.25 * unit(rng));
      break;
  }
  return h;
}

struct SearchArgs {
  int num_bits;
  bool is_unsigned;
  int64_t stride;
  int64_t start_bin;
};

SearchArgs random_args(std::mt19937_64& rng, int64_t n) {
  static const int kBits[] = {8, 8, 8, 4, 2, 1, 7, 12, 16};
  static const int64_t kStarts[] = {128, 0, 1, 128, 64};
  static const int64_t kStrides[] = {1, 1, 2, 4};
  SearchArgs a{kBits[rng() % 9], rng() % 2 == 1, kStrides[rng() % 4], kStarts[rng() % 5]};
  if (a.num_bits > 8 && n > 160) a.num_bits = 8;  // keeps the literal entropy port quick
  return a;
}

TEST(AmaxSearch, AgreesWithLiteralPortsOnRandomHistograms) {
  std::mt19937_64 rng(2024);
  int entropy_runs = 0, mse_runs = 0, entropy_mismatch = 0, mse_mismatch = 0;
  for (int t = 0; t < 400; ++t) {
    const int64_t n = rng() % 8 == 0 ? 1 + static_cast<int64_t>(rng() % 12)
                                     : 1 + static_cast<int64_t>(rng() % 520);
    const TestHistogram h = random_histogram(rng, n, t % 8);
    const SearchArgs a = random_args(rng, n);
    int64_t total = 0;
    for (int64_t v : h.counts) total += v;
    for (double p : {0.0, 50.0, 99.9, 99.99, 100.0}) {
      EXPECT_EQ(percentile_amax(h.counts, h.edges, p), literal::percentile(h.counts, h.edges, p))
          << "trial " << t << " percentile " << p;
    }
    std::vector<int64_t> bins = h.counts;
    if (n >= 2) bins[0] = bins[1];
    if (std::any_of(bins.begin(), bins.end(), [](int64_t v) { return v > 0; })) {
      ++entropy_runs;
      const float got =
          entropy_amax(h.counts, h.edges, a.num_bits, a.is_unsigned, a.stride, a.start_bin);
      const float want =
          literal::entropy(h.counts, h.edges, a.num_bits, a.is_unsigned, a.stride, a.start_bin);
      entropy_mismatch += got != want;
      EXPECT_EQ(got, want) << "entropy, trial " << t << ", n " << n << ", bits " << a.num_bits;
    }
    if (total > 0 && (a.num_bits > 1 || a.is_unsigned)) {
      ++mse_runs;
      const float got =
          mse_amax(h.counts, h.edges, a.num_bits, a.is_unsigned, a.stride, a.start_bin);
      const float want =
          literal::mse(h.counts, h.edges, a.num_bits, a.is_unsigned, a.stride, a.start_bin);
      mse_mismatch += got != want;
      EXPECT_EQ(got, want) << "mse, trial " << t << ", n " << n << ", bits " << a.num_bits;
    }
  }
  EXPECT_GT(entropy_runs, 350);
  EXPECT_GT(mse_runs, 300);
  EXPECT_EQ(entropy_mismatch, 0);
  EXPECT_EQ(mse_mismatch, 0);
}

// The histogram from the collector of 16k |gaussian| values in 2048 bins over [0, max].
TestHistogram gaussian_histogram(int64_t bins) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(1 << 14);
  float top = 0.0f;
  for (float& v : x) {
    v = std::fabs(gauss(rng));
    top = std::max(top, v);
  }
  TestHistogram h{std::vector<int64_t>(bins, 0), std::vector<float>(bins + 1)};
  for (int64_t j = 0; j <= bins; ++j) h.edges[j] = static_cast<float>(j * (double(top) / bins));
  for (float v : x) h.counts[std::min<int64_t>(bins - 1, static_cast<int64_t>(v / top * bins))]++;
  return h;
}

// The entropy search's batched log: every version the CPU runs (libmvec's AVX-512 and AVX2
// variants, std::log) within 4 ulp of std::log, for every length up to three vectors (the rest
// goes through std::log), over counts from 1 to 2^40.
TEST(AmaxSearch, BatchedLogIsWithinFourUlpOfStdLogInEveryVersion) {
  std::mt19937_64 gen(7);
  std::vector<double> x(40);
  for (double& v : x) v = static_cast<double>(1 + gen() % (uint64_t{1} << (gen() % 41)));
  x[3] = 1.0;
  x[9] = 2.0;
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    detail::ScopedCpuIsaCap cap(isa);
    for (int64_t n = 0; n <= 24; ++n) {
      std::vector<double> out(x.size(), -1.0);
      detail::log_n(x.data(), out.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        const double want = std::log(x[j]);
        EXPECT_LE(std::fabs(out[j] - want), 4 * std::numeric_limits<double>::epsilon() * want)
            << "log(" << x[j] << "), n " << n << ", instruction set " << static_cast<int>(isa);
      }
      EXPECT_EQ(out[n], -1.0);  // nothing past n written
    }
  }
}

TEST(AmaxSearch, DefaultArgumentsOnAGaussianHistogram) {
  const TestHistogram h = gaussian_histogram(2048);
  EXPECT_EQ(entropy_amax(h.counts, h.edges, 8, false),
            literal::entropy(h.counts, h.edges, 8, false, 1, 128));
  EXPECT_EQ(mse_amax(h.counts, h.edges, 8, false),
            literal::mse(h.counts, h.edges, 8, false, 1, 128));
  EXPECT_EQ(percentile_amax(h.counts, h.edges, 99.99),
            literal::percentile(h.counts, h.edges, 99.99));
}

// ---------------------------------------------------------------------------------------------
// Edge cases.

template <typename Fn>
void expect_invalid(Fn fn, const std::string& message) {
  try {
    fn();
    ADD_FAILURE() << "expected std::invalid_argument: " << message;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(AmaxSearch, PercentileOutsideZeroToHundredIsAnError) {
  const std::vector<int64_t> counts{1, 2, 3};
  const std::vector<float> edges{0.0f, 1.0f, 2.0f, 3.0f};
  expect_invalid([&] { percentile_amax(counts, edges, 100.5); },
                 "percentile_amax: percentile must be in [0, 100], got 100.5");
  expect_invalid([&] { percentile_amax(counts, edges, -1.0); },
                 "percentile_amax: percentile must be in [0, 100], got -1");
  expect_invalid([&] { percentile_amax(counts, edges, std::nan("")); },
                 "percentile_amax: percentile must be in [0, 100], got nan");
  EXPECT_EQ(percentile_amax(counts, edges, 0.0), 0.0f);
  EXPECT_EQ(percentile_amax(counts, edges, 50.0), 1.0f);  // cdf 1/6, 1/2, 1: bin 1's left edge
  EXPECT_EQ(percentile_amax(counts, edges, 100.0), 2.0f);
}

TEST(AmaxSearch, InvalidArgumentsAreErrors) {
  const std::vector<int64_t> counts{1, 2, 3};
  const std::vector<float> edges{0.0f, 1.0f, 2.0f, 3.0f};
  expect_invalid([&] { entropy_amax(counts, edges, 0, false); },
                 "entropy_amax: num_bits must be in [1, 16], got 0");
  expect_invalid([&] { entropy_amax(counts, edges, 17, true); },
                 "entropy_amax: num_bits must be in [1, 16], got 17");
  expect_invalid([&] { mse_amax(counts, edges, 1, false); },
                 "mse_amax: num_bits must be in [2, 16], got 1");
  expect_invalid([&] { entropy_amax(counts, edges, 8, false, 0); },
                 "entropy_amax: stride must be positive, got 0");
  expect_invalid([&] { mse_amax(counts, edges, 8, false, 1, -1); },
                 "mse_amax: start_bin must be >= 0, got -1");
  expect_invalid(
      [&] {
        mse_amax(counts, {0.0f, 1.0f, 2.0f}, 8, false);
      },
      "mse_amax: a histogram of 3 bins needs at least 4 edges, got 3");
  expect_invalid(
      [&] {
        percentile_amax({1, -2, 3}, edges, 50.0);
      },
      "percentile_amax: counts must be non-negative, got -2 in bin 1");
  EXPECT_TRUE(std::isfinite(mse_amax(counts, edges, 1, true)));  // 1-bit unsigned is fine
  EXPECT_TRUE(std::isfinite(entropy_amax(counts, edges, 1, false)));
}

TEST(AmaxSearch, EmptyHistogramsHaveNoAmax) {
  const std::vector<float> edges{0.0f, 1.0f, 2.0f, 3.0f};
  for (const std::vector<int64_t>& counts :
       {std::vector<int64_t>{0, 0, 0}, std::vector<int64_t>{5, 0, 0}}) {
    EXPECT_TRUE(std::isnan(entropy_amax(counts, edges, 8, false, 1, 0)));  // bins[0] = bins[1]
  }
  EXPECT_TRUE(std::isnan(mse_amax({0, 0, 0}, edges, 8, false, 1, 0)));
  EXPECT_TRUE(std::isnan(percentile_amax({0, 0, 0}, edges, 50.0)));
  const std::vector<int64_t> no_bins;
  const std::vector<float> one_edge{0.0f};
  EXPECT_TRUE(std::isnan(entropy_amax(no_bins, one_edge, 8, false)));
  EXPECT_TRUE(std::isnan(mse_amax(no_bins, one_edge, 8, false)));
  EXPECT_TRUE(std::isnan(percentile_amax(no_bins, one_edge, 50.0)));
}

// Upstream's loops are empty (argmin of nothing) when start_bin is past the last candidate; the
// searches then consider only the last candidate.
TEST(AmaxSearch, StartBinPastTheHistogramUsesTheLastCandidate) {
  const TestHistogram h = gaussian_histogram(100);
  EXPECT_EQ(entropy_amax(h.counts, h.edges, 8, false, 1, 128), h.edges[100]);
  EXPECT_EQ(mse_amax(h.counts, h.edges, 8, false, 1, 100), (h.edges[99] + h.edges[100]) / 2.0f);
  EXPECT_EQ(entropy_amax(h.counts, h.edges, 8, false, 200, 0), h.edges[100]);
  // start_bin = 0: candidate 0 (an empty reference, an IndexError upstream) is skipped.
  EXPECT_EQ(entropy_amax(h.counts, h.edges, 8, false, 1, 0),
            entropy_amax(h.counts, h.edges, 8, false, 1, 1));
}

TEST(AmaxSearch, OneBin) {
  const std::vector<int64_t> counts{7};
  const std::vector<float> edges{0.0f, 2.0f};
  EXPECT_EQ(entropy_amax(counts, edges, 8, false, 1, 0), 2.0f);
  EXPECT_EQ(mse_amax(counts, edges, 8, false, 1, 0), 1.0f);
  EXPECT_EQ(percentile_amax(counts, edges, 99.0), 0.0f);
}

// Growth by float32 arange can leave one edge more than bins + 1: entropy and percentile index
// the edges as upstream does, mse (a size-mismatch crash upstream) uses the first bins + 1.
TEST(AmaxSearch, AnExtraTrailingEdgeIsIgnored) {
  const TestHistogram h = gaussian_histogram(300);
  std::vector<float> longer = h.edges;
  longer.push_back(h.edges.back() + (h.edges[1] - h.edges[0]));
  EXPECT_EQ(entropy_amax(h.counts, longer, 8, false), entropy_amax(h.counts, h.edges, 8, false));
  EXPECT_EQ(mse_amax(h.counts, longer, 8, false), mse_amax(h.counts, h.edges, 8, false));
  EXPECT_EQ(percentile_amax(h.counts, longer, 100.0), percentile_amax(h.counts, h.edges, 100.0));
}

// As upstream: a candidate that keeps no count at all has a NaN divergence (0/0 in scipy), and
// numpy's argmin picks the (last) NaN: with nothing below bin 300, the amax is edges[300].
TEST(AmaxSearch, EntropyWithEmptyLowBinsPicksTheLastEmptyCandidate) {
  std::vector<int64_t> counts(512, 0);
  for (int64_t j = 300; j < 512; ++j) counts[j] = 10 + j % 7;
  std::vector<float> edges(513);
  for (int64_t j = 0; j <= 512; ++j) edges[j] = 0.5f * j;
  EXPECT_EQ(entropy_amax(counts, edges, 8, false), 150.0f);
  EXPECT_EQ(entropy_amax(counts, edges, 8, false),
            literal::entropy(counts, edges, 8, false, 1, 128));
}

// When levels outnumber the kept bins (16 bits) every source bin is its own quantized bin, and a
// histogram that ends early gives a plateau of exactly zero divergences: the last one wins.
TEST(AmaxSearch, SixteenBitsAndExactTies) {
  std::vector<int64_t> counts(600, 0);
  std::fill(counts.begin(), counts.begin() + 150, 40);
  std::vector<float> edges(601);
  for (int64_t j = 0; j <= 600; ++j) edges[j] = 0.25f * j;
  for (int bits : {8, 16}) {
    EXPECT_EQ(entropy_amax(counts, edges, bits, false), edges[600]);
    EXPECT_EQ(entropy_amax(counts, edges, bits, false),
              literal::entropy(counts, edges, bits, false, 1, 128));
    EXPECT_EQ(mse_amax(counts, edges, bits, true), literal::mse(counts, edges, bits, true, 1, 128));
  }
}

// Flat histograms quantized to 1 or 2 bits have candidates whose mean squared errors differ only
// in float32 rounding; upstream ranks them by its float32 cascade sum, and so must the search.
TEST(AmaxSearch, MseNearTiesRankAsPyTorchsFloat32Sum) {
  for (int64_t n = 20; n <= 60; ++n) {
    const std::vector<int64_t> counts(n, 1000);
    std::vector<float> edges(n + 1);
    for (int64_t j = 0; j <= n; ++j) edges[j] = static_cast<float>(j) * 0.01f;
    for (int bits : {1, 2}) {
      EXPECT_EQ(mse_amax(counts, edges, bits, true, 1, 0),
                literal::mse(counts, edges, bits, true, 1, 0))
          << n << " bins, " << bits << " bits";
    }
  }
}

// amax <= 2^-24 quantizes everything to 0 upstream.
TEST(AmaxSearch, MseWithTinyCentres) {
  std::vector<int64_t> counts(300);
  std::vector<float> edges(301);
  for (int64_t j = 0; j < 300; ++j) counts[j] = 1 + (j * 37) % 11;
  for (int64_t j = 0; j <= 300; ++j) edges[j] = static_cast<float>(j) * 1e-9f;
  EXPECT_EQ(mse_amax(counts, edges, 8, false, 1, 0), literal::mse(counts, edges, 8, false, 1, 0));
}

// Found by tests/fuzz/fuzz_histogram: with a range above FLT_MAX / 2 the top bin centres overflow
// to inf; a candidate there has scale 0, and the search for where its clamped tail begins read
// past the end of its arrays (AddressSanitizer, heap-buffer-overflow). Now it stops at the last
// bin, and the result is the literal port's (an infinite amax, as upstream's NaN scores give).
TEST(AmaxSearch, MseWithCentresPastFloatMax) {
  std::vector<int64_t> counts(64, 0);
  counts[0] = 1;
  counts[63] = 1;
  std::vector<float> edges(65);
  for (int64_t j = 0; j <= 64; ++j) edges[j] = static_cast<float>(j) * (3.0e38f / 64);
  for (const int64_t stride : {1, 4}) {
    const float expected = literal::mse(counts, edges, 8, false, stride, 54);
    const float amax = mse_amax(counts, edges, 8, false, stride, 54);
    EXPECT_TRUE(amax == expected || (std::isnan(amax) && std::isnan(expected)))
        << amax << " vs " << expected << ", stride " << stride;
  }
}

}  // namespace
}  // namespace torchquant
