// Model-level cost of quantization: a CIFAR-style ResNet (15 convolutions, 16/32/64 channels, a
// linear head; ResNet-20's layout with two blocks per stage) on a 32x3x32x32 batch, as plain
// torch::nn and as torchquant quant layers (int8, weights per channel, activations per tensor),
// measured in the same binary and run:
//   float forward | fake-quant forward, dynamic amax | fake-quant forward, calibrated amax
//   float forward+backward | fake-quant forward+backward (with peak memory of the step)
//   one calibration batch: histogram calibrators on activations, max on weights
//   Paired...: a benchmark and its baseline alternating within each iteration (their time ratio)
// Regenerate docs/benchmarks.md with scripts/bench-report.py.

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>
#include <torchquant/calib/calibrator.h>
#include <torchquant/nn/modules/quant_conv.h>
#include <torchquant/nn/modules/quant_linear.h>
#include <torchquant/quant_descriptor.h>
#include <torchquant/utils/calibrate.h>
#include <torchquant/utils/quantizers.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "memory_tracker.h"
#include "paired.h"

namespace torchquant {
namespace bench {
namespace {

template <bool kQuant>
struct Types {
  using Conv = std::conditional_t<kQuant, nn::QuantConv2d, torch::nn::Conv2d>;
  using Linear = std::conditional_t<kQuant, nn::QuantLinear, torch::nn::Linear>;
};

torch::nn::Conv2dOptions conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false);
}

template <bool kQuant>
struct BlockImpl : torch::nn::Module {
  using Conv = typename Types<kQuant>::Conv;
  BlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", Conv(conv3x3(in, out, stride)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module("conv2", Conv(conv3x3(out, out, 1)))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      down = register_module("downsample",
                             Conv(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      down_bn = register_module("downsample_bn", torch::nn::BatchNorm2d(out));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor y = bn2(conv2(torch::relu(bn1(conv1(x)))));
    return torch::relu(y + (down ? down_bn(down(x)) : x));
  }
  Conv conv1;
  torch::nn::BatchNorm2d bn1;
  Conv conv2;
  torch::nn::BatchNorm2d bn2;
  Conv down{nullptr};
  torch::nn::BatchNorm2d down_bn{nullptr};
};

template <bool kQuant>
struct NetImpl : torch::nn::Module {
  NetImpl()
      : stem(register_module("stem", typename Types<kQuant>::Conv(conv3x3(3, 16, 1)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(16))),
        fc(register_module("fc",
                           typename Types<kQuant>::Linear(torch::nn::LinearOptions(64, 10)))) {
    const int64_t widths[] = {16, 16, 32, 32, 64, 64};
    int64_t in = 16;
    for (int i = 0; i < 6; ++i) {
      const int64_t stride = (i == 2 || i == 4) ? 2 : 1;
      blocks.push_back(register_module("block" + std::to_string(i),
                                       std::make_shared<BlockImpl<kQuant>>(in, widths[i], stride)));
      in = widths[i];
    }
  }
  at::Tensor forward(at::Tensor x) {
    x = torch::relu(bn(stem(x)));
    for (auto& b : blocks) x = b->forward(x);
    return fc(x.mean({2, 3}));
  }
  typename Types<kQuant>::Conv stem;
  torch::nn::BatchNorm2d bn;
  std::vector<std::shared_ptr<BlockImpl<kQuant>>> blocks;
  typename Types<kQuant>::Linear fc;
};

at::Tensor& input() {
  static at::Tensor x = [] {
    at::manual_seed(0);
    return at::randn({32, 3, 32, 32});
  }();
  return x;
}

// The float net, and quant nets with the same weights: dynamic amax (as constructed) and
// calibrated amax (max calibration on the benchmark batch).
struct Models {
  std::shared_ptr<NetImpl<false>> float_net = std::make_shared<NetImpl<false>>();
  std::shared_ptr<NetImpl<true>> dynamic_net = quant_copy();
  std::shared_ptr<NetImpl<true>> calibrated_net = quant_copy();
  Models() {
    bool done = false;
    utils::calibrate(
        *calibrated_net,
        [&] {
          if (done) return false;
          calibrated_net->forward(input());
          done = true;
          return true;
        },
        utils::CalibrateOptions()
            .method(calib::ComputeAmaxOptions("max"))
            .progress(utils::Progress::kSilent));
  }
  std::shared_ptr<NetImpl<true>> quant_copy() const {
    auto q = std::make_shared<NetImpl<true>>();
    torch::NoGradGuard no_grad;
    const auto src = float_net->named_parameters();
    for (auto& p : q->named_parameters()) {
      if (const auto* s = src.find(p.key())) p.value().copy_(*s);
    }
    return q;
  }
};

Models& models() {
  static Models m;
  return m;
}

void setup(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  TrackingAllocator::install();
  input();
  models();
}

// The calibrating copy: histogram calibrators on the activation inputs, max on the weights,
// quantization off (utils::calibrate's collect mode).
NetImpl<true>& calibrating_net() {
  static std::shared_ptr<NetImpl<true>> net = [] {
    auto n = models().quant_copy();
    for (auto& q : utils::named_quantizers(*n)) {
      if (q.name.find("_input_quantizer") == std::string::npos) continue;
      q.quantizer->set_calibrator(
          calib::make_calibrator(QuantDescriptor().calib_method("histogram")));
    }
    utils::disable_quantization(*n);
    utils::enable_calibration(*n);
    return n;
  }();
  return *net;
}

// What one iteration of each benchmark does, the net in the mode it needs.
template <typename Net>
std::function<void()> forward_step(Net& net) {
  return [&net] {
    net.eval();
    torch::NoGradGuard no_grad;
    benchmark::DoNotOptimize(net.forward(input()));
  };
}

template <typename Net>
std::function<void()> training_step(Net& net) {
  return [&net] {
    net.train();
    net.forward(input()).sum().backward();
    net.zero_grad();  // frees the gradients: every step starts without them
  };
}

std::function<void()> step(const std::string& name) {
  Models& m = models();
  if (name == "FloatForward") return forward_step(*m.float_net);
  if (name == "FakeQuantForwardDynamic") return forward_step(*m.dynamic_net);
  if (name == "FakeQuantForwardCalibrated") return forward_step(*m.calibrated_net);
  // One calibration batch: eval mode without gradients, as utils::calibrate runs it.
  if (name == "CalibrationBatch") return forward_step(calibrating_net());
  if (name == "FloatForwardBackward") return training_step(*m.float_net);
  if (name == "FakeQuantForwardBackward") return training_step(*m.calibrated_net);
  throw std::invalid_argument("bench_model: no step named " + name);
}

void single(benchmark::State& state, const std::string& name) {
  setup(state);
  const auto run = step(name);
  for (auto _ : state) run();
}

// Peak memory of a training step: the bytes allocated during the step above what was live before
// it (activations saved for backward, gradients, temporaries).
void training(benchmark::State& state, const std::string& name) {
  setup(state);
  const auto run = step(name);
  auto& tracker = TrackingAllocator::install();
  int64_t peak = 0;
  for (auto _ : state) {
    const int64_t before = tracker.live();
    tracker.reset_peak();
    run();
    peak = std::max(peak, tracker.peak() - before);
  }
  state.counters["peak_MB"] = static_cast<double>(peak) / (1 << 20);
}

// The benchmark and its baseline alternating within every iteration (paired.h).
void paired(benchmark::State& state, const std::string& name, const std::string& base_name) {
  setup(state);
  torchquant::bench::paired(state, step(name), step(base_name));
}

void BM_FloatForward(benchmark::State& state) { single(state, "FloatForward"); }
void BM_FakeQuantForwardDynamic(benchmark::State& state) {
  single(state, "FakeQuantForwardDynamic");
}
void BM_FakeQuantForwardCalibrated(benchmark::State& state) {
  single(state, "FakeQuantForwardCalibrated");
}
void BM_CalibrationBatch(benchmark::State& state) { single(state, "CalibrationBatch"); }
void BM_FloatForwardBackward(benchmark::State& state) { training(state, "FloatForwardBackward"); }
void BM_FakeQuantForwardBackward(benchmark::State& state) {
  training(state, "FakeQuantForwardBackward");
}
void BM_PairedDynamic(benchmark::State& state) {
  paired(state, "FakeQuantForwardDynamic", "FloatForward");
}
void BM_PairedCalibrated(benchmark::State& state) {
  paired(state, "FakeQuantForwardCalibrated", "FloatForward");
}
void BM_PairedCalibrationBatch(benchmark::State& state) {
  paired(state, "CalibrationBatch", "FloatForward");
}
void BM_PairedForwardBackward(benchmark::State& state) {
  paired(state, "FakeQuantForwardBackward", "FloatForwardBackward");
}

#define TORCHQUANT_MODEL_BENCH(fn) \
  BENCHMARK(fn)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime()

TORCHQUANT_MODEL_BENCH(BM_FloatForward);
TORCHQUANT_MODEL_BENCH(BM_FakeQuantForwardDynamic);
TORCHQUANT_MODEL_BENCH(BM_FakeQuantForwardCalibrated);
TORCHQUANT_MODEL_BENCH(BM_CalibrationBatch);
TORCHQUANT_MODEL_BENCH(BM_FloatForwardBackward);
TORCHQUANT_MODEL_BENCH(BM_FakeQuantForwardBackward);
TORCHQUANT_MODEL_BENCH(BM_PairedDynamic);
TORCHQUANT_MODEL_BENCH(BM_PairedCalibrated);
TORCHQUANT_MODEL_BENCH(BM_PairedCalibrationBatch);
TORCHQUANT_MODEL_BENCH(BM_PairedForwardBackward);

}  // namespace
}  // namespace bench
}  // namespace torchquant

BENCHMARK_MAIN();
