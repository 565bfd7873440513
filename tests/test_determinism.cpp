// Determinism: every op, both calibrators and every amax search give bit-identical results with 1
// and 2 intra-op threads and from one run to the next, on tensors large enough (2^20 elements) for
// at::parallel_for to split the work.

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "test_helpers.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"
#include "torchquant/tensor_quant.h"

namespace torchquant {
namespace {

using testing::bit_equal;

constexpr int64_t kElements = int64_t{1} << 20;

/// Restores the intra-op thread count when the test ends, failed or not.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : before_(at::get_num_threads()) {}
  ~ThreadCountGuard() { at::set_num_threads(before_); }

 private:
  int before_;
};

/// Runs `fn` with 1 thread, twice with 2 threads, and once more with 1, and expects the same bits
/// from every run.
void expect_deterministic(const std::function<std::vector<at::Tensor>()>& fn) {
  ThreadCountGuard guard;
  std::vector<std::vector<at::Tensor>> runs;
  for (int threads : {1, 2, 2, 1}) {
    at::set_num_threads(threads);
    ASSERT_EQ(at::get_num_threads(), threads);
    runs.push_back(fn());
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_TRUE(bit_equal(runs[r][i], runs[0][i])) << "run " << r << ", output " << i;
    }
  }
}

at::Tensor big_input() {
  torch::manual_seed(2024);
  return torch::randn({64, 16, 32, 32}) * 3;  // 2^20 elements
}

TEST(Determinism, OpsAreBitIdenticalWithOneAndTwoThreads) {
  const at::Tensor x = big_input();
  ASSERT_EQ(x.numel(), kElements);
  const at::Tensor per_tensor = torch::tensor(4.0f);
  const at::Tensor per_channel = x.abs().amax({0, 2, 3}, true) * 0.9;
  expect_deterministic([&] {
    std::vector<at::Tensor> out;
    for (const at::Tensor& amax : {per_tensor, per_channel}) {
      out.push_back(fake_tensor_quant(x, amax));
      out.push_back(fake_tensor_quant(x.to(at::kHalf), amax, 6, false, false));
      out.push_back(fake_tensor_quant(x.to(at::kBFloat16), amax, 4));
      out.push_back(fake_tensor_quant(x.abs().to(at::kDouble), amax, 8, true));
      auto [q, scale] = tensor_quant(x, amax, 8);
      out.push_back(q);
      out.push_back(scale);
    }
    out.push_back(fake_affine_tensor_quant(x, torch::tensor(-2.5f), torch::tensor(6.0f), 8));
    out.push_back(scaled_e4m3(x, per_tensor));
    out.push_back(scaled_e4m3(x.to(at::kHalf)));
    return out;
  });
}

TEST(Determinism, GradientsAreBitIdenticalWithOneAndTwoThreads) {
  const at::Tensor x = big_input();
  const at::Tensor grad = torch::randn_like(x);
  expect_deterministic([&] {
    const at::Tensor leaf = x.clone().requires_grad_(true);
    fake_tensor_quant(leaf, torch::tensor(3.0f)).backward(grad);
    const at::Tensor leaf2 = x.clone().requires_grad_(true);
    scaled_e4m3(leaf2, torch::tensor(3.0f)).backward(grad);
    return std::vector<at::Tensor>{leaf.grad(), leaf2.grad()};
  });
}

TEST(Determinism, MaxCalibratorIsBitIdenticalWithOneAndTwoThreads) {
  const at::Tensor x = big_input();
  expect_deterministic([&] {
    calib::MaxCalibrator per_tensor;
    calib::MaxCalibrator per_channel(8, std::vector<int64_t>{1});
    calib::MaxCalibrator per_row(8, std::vector<int64_t>{0});
    for (const at::Tensor& batch : {x, x * 0.5, x.to(at::kHalf)}) {
      per_tensor.collect(batch);
      per_channel.collect(batch);
      per_row.collect(batch);
    }
    return std::vector<at::Tensor>{*per_tensor.compute_amax(), *per_channel.compute_amax(),
                                   *per_row.compute_amax()};
  });
}

TEST(Determinism, HistogramCalibratorAndAmaxSearchAreBitIdenticalWithOneAndTwoThreads) {
  const at::Tensor x = big_input();
  expect_deterministic([&] {
    calib::HistogramCalibrator per_tensor;
    calib::HistogramCalibrator skip(8, c10::nullopt, false, 2048, /*skip_zeros=*/true);
    calib::HistogramCalibrator per_channel(8, std::vector<int64_t>{1}, false, 512);
    // The second batch grows the range; the third has zeros.
    for (const at::Tensor& batch : {x, x * 2, at::relu(x)}) {
      per_tensor.collect(batch);
      skip.collect(batch);
      per_channel.collect(batch);
    }
    std::vector<at::Tensor> out;
    for (const calib::HistogramCalibrator* c : {&per_tensor, &skip, &per_channel}) {
      for (const auto& h : c->histograms()) {
        out.push_back(torch::tensor(h.counts));
        out.push_back(torch::tensor(h.edges));
      }
      out.push_back(*c->compute_amax("entropy"));
      out.push_back(*c->compute_amax("mse"));
      out.push_back(*c->compute_amax(calib::ComputeAmaxOptions("percentile").percentile(99.9)));
    }
    return out;
  });
}

}  // namespace
}  // namespace torchquant
