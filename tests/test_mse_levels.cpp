// The mse search's level loop (src/calib/mse_levels.h): the AVX-512 and AVX2 versions sum what
// the scalar one sums, to rounding, for every level count and candidate; they decline (and the
// dispatcher falls back) where a guessed boundary is wrong; level_boundary is exact wherever it
// starts.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "calib/mse_levels.h"
#include "test_helpers.h"

namespace torchquant {
namespace {

using calib::detail::LevelGrid;
using calib::detail::LevelSums;

// Centres and prefix sums of a histogram of |gaussian| counts, as the mse search builds them.
struct Grid {
  std::vector<float> probe;
  std::vector<double> w, x_hi, x_lo;
  LevelGrid view;
  explicit Grid(int64_t n, float spacing) : probe(n + 2), w(n + 1), x_hi(n + 1), x_lo(n + 1) {
    std::mt19937_64 rng(3);
    probe[0] = -std::numeric_limits<float>::infinity();
    probe[n + 1] = std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      const float centre = (static_cast<float>(j) + 0.5f) * spacing;
      const double count = std::floor(1e6 * std::exp(-0.5 * std::pow(4.0 * j / n, 2))) +
                           static_cast<double>(rng() % 3);
      probe[j + 1] = centre;
      w[j + 1] = w[j] + count;
      x_hi[j + 1] = x_hi[j] + count * centre;  // the search's lo part is a correction; 0 here
    }
    view = {probe.data(),
            w.data(),
            x_hi.data(),
            x_lo.data(),
            n,
            probe[1],
            static_cast<double>(n - 1) / (static_cast<double>(probe[n]) - probe[1])};
  }
};

// The first index whose centre quantizes to lvl or more, by scanning.
int64_t scanned_boundary(const Grid& g, float lvl, float scale) {
  for (int64_t j = 0; j < g.view.n; ++j) {
    if (std::nearbyint(g.probe[j + 1] * scale) >= lvl) return j;
  }
  return g.view.n;
}

void expect_close(double got, double want, const std::string& what) {
  EXPECT_LE(std::fabs(got - want), 1e-12 * std::fabs(want) + 1e-300) << what;
}

TEST(MseLevels, BoundaryIsExactFromAnyGuess) {
  const Grid g(2048, 1.0f / 512);
  for (float amax : {0.3f, 1.7f, 3.999f}) {
    const float scale = 127.0f / amax;
    for (float lvl : {1.0f, 2.0f, 63.0f, 126.0f, 127.0f}) {
      const int64_t want = scanned_boundary(g, lvl, scale);
      for (double guess : {g.view.guess(lvl, scale), 0.0, 2048.0, 700.5, -5.0,
                           std::numeric_limits<double>::quiet_NaN()}) {
        EXPECT_EQ(calib::detail::level_boundary(g.view, lvl, scale, guess), want)
            << "amax " << amax << ", level " << lvl << ", guess " << guess;
      }
    }
  }
}

TEST(MseLevels, EveryVersionSumsTheSameLevels) {
  const Grid g(2048, 1.0f / 512);
  bool vector_ran = false;
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    for (float max_bound : {7.0f, 127.0f, 255.0f}) {
      for (int64_t i : {3, 100, 511, 1000, 2047}) {
        const float amax = g.probe[i + 1];
        const float scale = max_bound / amax;
        const float first = std::nearbyint(g.probe[1] * scale);
        const int64_t end =
            calib::detail::level_boundary(g.view, max_bound, scale, g.view.guess(max_bound, scale));
        const LevelSums want =
            calib::detail::level_sums_scalar(g.view, first, max_bound, end, scale);
        const LevelSums got = calib::detail::level_sums(isa, g.view, first, max_bound, end, scale);
        const std::string what = "isa " + std::to_string(static_cast<int>(isa)) + ", bound " +
                                 std::to_string(max_bound) + ", candidate " + std::to_string(i);
        expect_close(got.qqw, want.qqw, what);
        expect_close(got.qx, want.qx, what);
        expect_close(got.qx_size, want.qx_size, what);
#if defined(__x86_64__)
        // The vector version itself must take these candidates (level_sums falls back to the
        // scalar walk when it declines, which the comparison above would not notice).
        LevelSums direct;
        if (isa == detail::CpuIsa::kAvx512) {
          EXPECT_TRUE(
              calib::detail::level_sums_avx512(g.view, first, max_bound, end, scale, &direct))
              << what;
          vector_ran = true;
        } else if (isa == detail::CpuIsa::kAvx2) {
          EXPECT_TRUE(calib::detail::level_sums_avx2(g.view, first, max_bound, end, scale, &direct))
              << what;
          vector_ran = true;
        }
#endif
      }
    }
  }
  if (detail::supported_cpu_isa() != detail::CpuIsa::kScalar) {
    EXPECT_TRUE(vector_ran);
  }
}

// Without a usable spacing every guess is 0: the vector version declines, and the dispatcher's
// answer is the scalar one's.
TEST(MseLevels, WrongGuessesFallBackToTheScalarWalk) {
  Grid g(512, 1.0f / 128);
  g.view.inv_spacing = 0.0;
  const float scale = 127.0f / g.probe[400];
  const int64_t end =
      calib::detail::level_boundary(g.view, 127.0f, scale, g.view.guess(127.0f, scale));
  EXPECT_EQ(end, scanned_boundary(g, 127.0f, scale));
  const LevelSums want = calib::detail::level_sums_scalar(g.view, 0.0f, 127.0f, end, scale);
  for (detail::CpuIsa isa : testing::runnable_isas()) {
    const LevelSums got = calib::detail::level_sums(isa, g.view, 0.0f, 127.0f, end, scale);
    EXPECT_EQ(got.qqw, want.qqw);
    EXPECT_EQ(got.qx, want.qx);
#if defined(__x86_64__)
    LevelSums direct;
    if (isa == detail::CpuIsa::kAvx512) {
      EXPECT_FALSE(calib::detail::level_sums_avx512(g.view, 0.0f, 127.0f, end, scale, &direct));
    }
    if (isa == detail::CpuIsa::kAvx2) {
      EXPECT_FALSE(calib::detail::level_sums_avx2(g.view, 0.0f, 127.0f, end, scale, &direct));
    }
#endif
  }
}

}  // namespace
}  // namespace torchquant
