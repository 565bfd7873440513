// Fashion-MNIST post-training quantization and quantization-aware training with torchquant.
//
// Trains a small ResNet-style CNN in float (cached), calibrates int8 quantizers with max, entropy,
// mse and percentile, evaluates every variant on the 10k test images, fine-tunes the best one
// with QAT, and writes a results table (JSON and markdown), the quantized checkpoint, a TensorRT
// calibration cache, a per-layer sensitivity report and two PNG pictures.
//
//   build/examples/fashion_mnist/fashion_mnist --help

#include <torch/torch.h>
#include <torchquant/torchquant.h>
#include <torchquant/utils/calib_cache.h>
#include <torchquant/utils/calibrate.h>
#include <torchquant/utils/checkpoint.h>
#include <torchquant/utils/quantizers.h>
#include <torchquant/utils/sensitivity.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace tq = torchquant;
namespace tqnn = torchquant::nn;

// ---------------------------------------------------------------------------------------------
// Data: gzipped IDX files from the Debian package dataset-fashion-mnist.

std::vector<uint8_t> read_gz(const fs::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw std::runtime_error("cannot open " + path.string() +
                             ": install the Debian package dataset-fashion-mnist "
                             "(apt-get install dataset-fashion-mnist) or pass --data-dir");
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
  gzclose(f);
  if (n < 0) throw std::runtime_error("corrupt gzip file " + path.string());
  return bytes;
}

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         b[at + 3];
}

struct Split {
  at::Tensor images;  // [N, 1, 28, 28] float, normalised
  at::Tensor labels;  // [N] int64
};

Split load_split(const fs::path& dir, const std::string& prefix, int64_t limit) {
  const auto images = read_gz(dir / (prefix + "-images-idx3-ubyte.gz"));
  const auto labels = read_gz(dir / (prefix + "-labels-idx1-ubyte.gz"));
  if (images.size() < 16 || big_endian(images, 0) != 2051 || labels.size() < 8 ||
      big_endian(labels, 0) != 2049) {
    throw std::runtime_error("not IDX files in " + dir.string());
  }
  int64_t n = big_endian(images, 4);
  if (limit > 0) n = std::min(n, limit);
  at::Tensor x =
      torch::from_blob(const_cast<uint8_t*>(images.data()) + 16, {n, 1, 28, 28}, torch::kUInt8)
          .to(torch::kFloat)
          .div(255.0)
          .sub(0.2860)
          .div(0.3530);
  at::Tensor y = torch::from_blob(const_cast<uint8_t*>(labels.data()) + 8, {n}, torch::kUInt8)
                     .to(torch::kLong);
  return {x, y};
}

// ---------------------------------------------------------------------------------------------
// Model: a ResNet-style CNN written against torchquant's quant types (mechanism 1 of
// docs/layers.md). With quant_modules deactivated it is exactly the float network.

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module(
            "conv1",
            tqnn::QuantConv2d(
                torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module(
            "conv2",
            tqnn::QuantConv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))),
        add(register_module("add", tqnn::QuantAdd())) {
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample",
          torch::nn::Sequential(
              tqnn::QuantConv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
              torch::nn::BatchNorm2d(out)));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(add(y, downsample ? downsample->forward(x) : x));
  }
  tqnn::QuantConv2d conv1;
  torch::nn::BatchNorm2d bn1;
  tqnn::QuantConv2d conv2;
  torch::nn::BatchNorm2d bn2;
  tqnn::QuantAdd add;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t width)
      : stem(register_module(
            "stem",
            tqnn::QuantConv2d(torch::nn::Conv2dOptions(1, width, 3).padding(1).bias(false)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(width))),
        layer1(register_module("layer1", Block(width, 2 * width, 2))),
        layer2(register_module("layer2", Block(2 * width, 4 * width, 2))),
        layer3(register_module("layer3", Block(4 * width, 4 * width, 1))),
        pool(register_module("pool",
                             tqnn::QuantAdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(1)))),
        fc(register_module("fc", tqnn::QuantLinear(torch::nn::LinearOptions(4 * width, 10)))) {}
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = torch::relu(bn(stem(x)));
    y = layer3(layer2(layer1(y)));
    return fc(pool(y).flatten(1));
  }
  tqnn::QuantConv2d stem;
  torch::nn::BatchNorm2d bn;
  Block layer1, layer2, layer3;
  tqnn::QuantAdaptiveAvgPool2d pool;
  tqnn::QuantLinear fc;
};
TORCH_MODULE(Net);

// A copy of `model` (weights, batch-norm statistics and amax) through serialization.
Net copy_of(Net& model, int64_t width) {
  Net copy(width);
  std::stringstream stream;
  torch::save(model, stream);
  torch::load(copy, stream);
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Training and evaluation.

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void train(Net& model, const Split& data, int64_t epochs_x100, double lr0, int64_t batch,
           const std::string& tag) {
  // epochs_x100: hundredths of an epoch, so that QAT can run 10% of the schedule.
  const int64_t n = data.images.size(0);
  const int64_t steps = std::max<int64_t>(1, n * epochs_x100 / 100 / batch);
  torch::optim::SGD optimizer(model->parameters(),
                              torch::optim::SGDOptions(lr0).momentum(0.9).weight_decay(5e-4));
  model->train();
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor order = torch::randperm(n);
  int64_t cursor = 0;
  double running = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const double lr = 0.5 * lr0 * (1 + std::cos(M_PI * static_cast<double>(step) / steps));
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    }
    if (cursor + batch > n) {
      order = torch::randperm(n);
      cursor = 0;
    }
    const at::Tensor idx = order.slice(0, cursor, cursor + batch);
    cursor += batch;
    optimizer.zero_grad();
    const at::Tensor loss = torch::cross_entropy_loss(
        model->forward(data.images.index_select(0, idx)), data.labels.index_select(0, idx));
    loss.backward();
    optimizer.step();
    running = step == 0 ? loss.item<double>() : 0.98 * running + 0.02 * loss.item<double>();
    if ((step + 1) % 50 == 0 || step + 1 == steps) {
      std::cout << tag << ": step " << step + 1 << "/" << steps << "  loss " << std::fixed
                << std::setprecision(4) << running << "  lr " << std::setprecision(5) << lr << "  "
                << std::setprecision(1) << seconds_since(t0) << " s" << std::endl;
    }
  }
}

// Top-1 in percent; `tag` non-empty: a progress line when done.
double evaluate(Net& model, const Split& data, int64_t batch, const std::string& tag = "") {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto t0 = std::chrono::steady_clock::now();
  int64_t correct = 0;
  const int64_t n = data.images.size(0);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t end = std::min(n, i + batch);
    correct += model->forward(data.images.slice(0, i, end))
                   .argmax(1)
                   .eq(data.labels.slice(0, i, end))
                   .sum()
                   .item<int64_t>();
  }
  const double top1 = 100.0 * static_cast<double>(correct) / static_cast<double>(n);
  if (!tag.empty()) {
    std::cout << "eval " << tag << ": " << n << " images, top-1 " << std::fixed
              << std::setprecision(2) << top1 << "%  " << std::setprecision(1) << seconds_since(t0)
              << " s" << std::endl;
  }
  return top1;
}

// ---------------------------------------------------------------------------------------------
// Pictures: a minimal PNG writer (zlib) and a 3x5 pixel font.

struct Image {
  int w, h;
  std::vector<uint8_t> rgb;
  Image(int w_, int h_) : w(w_), h(h_), rgb(static_cast<size_t>(w_ * h_ * 3), 255) {}
  void fill(int x0, int y0, int x1, int y1, uint32_t color) {
    for (int y = std::max(0, y0); y < std::min(h, y1); ++y) {
      for (int x = std::max(0, x0); x < std::min(w, x1); ++x) {
        uint8_t* p = &rgb[static_cast<size_t>((y * w + x) * 3)];
        p[0] = color >> 16;
        p[1] = (color >> 8) & 255;
        p[2] = color & 255;
      }
    }
  }
  // Text in a 3x5 font, `scale` pixels per font pixel.
  void text(int x, int y, const std::string& s, int scale, uint32_t color) {
    static const std::map<char, uint16_t> font = {
        {'0', 0x7B6F}, {'1', 0x2C97}, {'2', 0x73E7}, {'3', 0x73CF}, {'4', 0x5BC9}, {'5', 0x79CF},
        {'6', 0x79EF}, {'7', 0x7249}, {'8', 0x7BEF}, {'9', 0x7BCF}, {'.', 0x0002}, {'%', 0x52A5},
        {'(', 0x2922}, {')', 0x224A}, {':', 0x0410}, {'|', 0x2492}, {'+', 0x05D0}, {'/', 0x12A4},
        {'J', 0x126A}, {'K', 0x5D35}, {'V', 0x5B6A}, {'W', 0x5BFD}, {'Z', 0x72A7}, {'A', 0x2BED},
        {'B', 0x6BAE}, {'C', 0x7927}, {'D', 0x6B6E}, {'E', 0x79E7}, {'F', 0x79E4}, {'G', 0x796F},
        {'H', 0x5BED}, {'I', 0x7497}, {'L', 0x4927}, {'M', 0x5FED}, {'N', 0x6B6D}, {'O', 0x2B6A},
        {'P', 0x6BA4}, {'Q', 0x2B79}, {'R', 0x6BAD}, {'S', 0x388E}, {'T', 0x7492}, {'U', 0x5B6F},
        {'X', 0x5AAD}, {'Y', 0x5A92}, {'-', 0x01C0}, {' ', 0x0000}};
    for (char c : s) {
      const auto it = font.find(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
      const uint16_t bits = it == font.end() ? 0 : it->second;
      for (int row = 0; row < 5; ++row) {
        for (int col = 0; col < 3; ++col) {
          if (bits & (1u << (14 - (row * 3 + col)))) {
            fill(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale,
                 color);
          }
        }
      }
      x += 4 * scale;
    }
  }
  void write_png(const fs::path& path) const {
    std::vector<uint8_t> raw;
    for (int y = 0; y < h; ++y) {
      raw.push_back(0);  // filter: none
      raw.insert(raw.end(), rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
    }
    uLongf size = compressBound(raw.size());
    std::vector<uint8_t> z(size);
    compress2(z.data(), &size, raw.data(), raw.size(), 9);
    z.resize(size);
    std::ofstream out(path, std::ios::binary);
    auto u32 = [&](uint32_t v) {
      const uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
      out.write(reinterpret_cast<const char*>(b), 4);
    };
    auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
      u32(static_cast<uint32_t>(data.size()));
      std::vector<uint8_t> body(type, type + 4);
      body.insert(body.end(), data.begin(), data.end());
      out.write(reinterpret_cast<const char*>(body.data()),
                static_cast<std::streamsize>(body.size()));
      u32(static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
    };
    out.write("\x89PNG\r\n\x1a\n", 8);
    std::vector<uint8_t> ihdr(13, 0);
    for (int i = 0; i < 4; ++i) {
      ihdr[i] = uint8_t(w >> (24 - 8 * i));
      ihdr[4 + i] = uint8_t(h >> (24 - 8 * i));
    }
    ihdr[8] = 8;  // bit depth
    ihdr[9] = 2;  // RGB
    chunk("IHDR", ihdr);
    chunk("IDAT", z);
    chunk("IEND", {});
  }
};

struct Result {
  std::string variant;
  double top1 = 0;
  double calib_seconds = 0;
};

void bar_chart(const std::vector<Result>& results, const fs::path& path) {
  const int bar = 60, gap = 30, left = 40, base = 330, top = 40;
  Image img(left + static_cast<int>(results.size()) * (bar + gap) + gap, 420);
  double lo = 100, hi = 0;
  for (const auto& r : results) {
    lo = std::min(lo, r.top1);
    hi = std::max(hi, r.top1);
  }
  lo = std::floor(lo) - 1;  // the bars show the accuracy between lo and hi
  hi = std::ceil(hi) + 0.5;
  img.text(10, 10, "TOP-1 % (BARS START AT " + std::to_string(static_cast<int>(lo)) + "%)", 3,
           0x000000);
  for (size_t i = 0; i < results.size(); ++i) {
    const int x = left + static_cast<int>(i) * (bar + gap);
    const int height = static_cast<int>((results[i].top1 - lo) / (hi - lo) * (base - top));
    img.fill(x, base - height, x + bar, base, i == 0 ? 0x4C72B0 : 0xDD8452);
    std::ostringstream v;
    v << std::fixed << std::setprecision(2) << results[i].top1;
    img.text(x, base - height - 14, v.str(), 2, 0x000000);
    img.text(x, base + 10, results[i].variant.substr(0, 7), 2, 0x000000);
    if (results[i].variant.size() > 7)
      img.text(x, base + 24, results[i].variant.substr(7, 7), 2, 0x000000);
  }
  img.fill(left - 10, base, img.w - 10, base + 2, 0x000000);
  img.write_png(path);
}

void histogram_picture(const tq::calib::HistogramCalibrator& calib,
                       const std::vector<std::pair<std::string, float>>& amaxes,
                       const fs::path& path) {
  const auto& h = calib.histogram();
  const int W = 900, H = 420, base = 360, left = 20;
  Image img(W, H);
  const float top_edge = h.edges.back();
  std::vector<double> bins(W - 2 * left, 0);
  for (size_t i = 0; i < h.counts.size(); ++i) {
    const auto x = static_cast<size_t>((h.edges[i] / top_edge) * (bins.size() - 1));
    bins[x] += static_cast<double>(h.counts[i]);
  }
  double peak = 1;
  for (double b : bins) peak = std::max(peak, std::log1p(b));
  for (size_t x = 0; x < bins.size(); ++x) {
    const int height = static_cast<int>(std::log1p(bins[x]) / peak * (base - 60));
    img.fill(left + static_cast<int>(x), base - height, left + static_cast<int>(x) + 1, base,
             0x4C72B0);
  }
  const uint32_t colors[] = {0xC44E52, 0x55A868, 0x8172B2, 0xCCB974, 0x64B5CD, 0x000000};
  for (size_t i = 0; i < amaxes.size(); ++i) {
    const int x = left + static_cast<int>(amaxes[i].second / top_edge * (bins.size() - 1));
    img.fill(x, 40, x + 2, base, colors[i % 6]);
    img.text(20 + static_cast<int>(i) * 145, 392, amaxes[i].first.substr(0, 9), 2, colors[i % 6]);
  }
  img.text(20, 10, "LOG COUNTS OF |X| AND AMAX", 3, 0x000000);
  img.write_png(path);
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  CLI::App app{"Fashion-MNIST PTQ + QAT with torchquant"};
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "fashion_mnist_out";
  int64_t epochs_x100 = 500, batch = 128, calib_images = 512, threads = 0, width = 16;
  int64_t train_limit = 0, test_limit = 0;
  double lr = 0.1;
  bool quick = false;
  app.add_option("--data-dir", data_dir, "directory of the gzipped IDX files");
  app.add_option("--output-dir", out_dir, "where results, checkpoints and pictures go");
  app.add_option("--epochs-x100", epochs_x100, "float training length in hundredths of an epoch");
  app.add_option("--batch-size", batch, "training and evaluation batch size");
  app.add_option("--calib-images", calib_images, "training images used for calibration");
  app.add_option("--threads", threads, "intra-op threads (0: all cores)");
  app.add_option("--width", width, "channels of the stem (the blocks use 2x and 4x)");
  app.add_option("--train-limit", train_limit, "use only the first N training images");
  app.add_option("--test-limit", test_limit, "use only the first N test images");
  app.add_option("--lr", lr, "initial learning rate (SGD, cosine decay)");
  app.add_flag("--quick", quick, "a fast smoke run: 6000/1000 images, 1 epoch, width 8");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    train_limit = train_limit ? train_limit : 6000;
    test_limit = test_limit ? test_limit : 1000;
    epochs_x100 = 100;
    width = 8;
    calib_images = 256;
  }
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  const auto t_all = std::chrono::steady_clock::now();
  fs::create_directories(out_dir);
  const fs::path out(out_dir);

  std::cout << "loading Fashion-MNIST from " << data_dir << std::endl;
  const Split train_set = load_split(data_dir, "train", train_limit);
  const Split test_set = load_split(data_dir, "t10k", test_limit);
  std::cout << "train " << train_set.images.size(0) << ", test " << test_set.images.size(0)
            << " images" << std::endl;

  // 1. Float model, cached.
  tqnn::quant_modules::deactivate();
  Net model(width);
  std::ostringstream tag;
  tag << "float_w" << width << "_e" << epochs_x100 << "_n" << train_set.images.size(0) << ".pt";
  const fs::path float_ckpt = out / tag.str();
  if (fs::exists(float_ckpt)) {
    torch::load(model, float_ckpt.string());
    std::cout << "float model loaded from " << float_ckpt << " (delete it to retrain)" << std::endl;
  } else {
    train(model, train_set, epochs_x100, lr, batch, "float");
    torch::save(model, float_ckpt.string());
  }
  const double float_top1 = evaluate(model, test_set, 500, "float");
  std::cout << "float top-1 " << std::fixed << std::setprecision(2) << float_top1 << "%"
            << std::endl;
  std::vector<Result> results = {{"float", float_top1, 0}};

  // 2. PTQ: calibrate on a few hundred training images with each method.
  tqnn::quant_modules::initialize();
  const at::Tensor calib_x = train_set.images.slice(0, 0, calib_images);
  auto calibrate_with = [&](Net& m, const std::string& calibrator,
                            const tq::calib::ComputeAmaxOptions& method) {
    for (auto& nq : tq::utils::named_quantizers(*m)) {
      if (nq.name.find("_weight_quantizer") != std::string::npos) continue;  // weights: max
      auto desc = tq::QuantDescriptor().calib_method(calibrator);
      nq.quantizer->set_calibrator(tq::calib::make_calibrator(desc));
    }
    int64_t next = 0;
    return tq::utils::calibrate(
        *m,
        [&] {
          if (next >= calib_x.size(0)) return false;
          m->forward(calib_x.slice(0, next, next + batch));
          next += batch;
          return true;
        },
        tq::utils::CalibrateOptions().method(method).progress(tq::utils::Progress::kLines));
  };
  struct Variant {
    std::string name, calibrator;
    tq::calib::ComputeAmaxOptions method;
  };
  const std::vector<Variant> variants = {
      {"max", "max", {}},
      {"entropy", "histogram", tq::calib::ComputeAmaxOptions("entropy")},
      {"mse", "histogram", tq::calib::ComputeAmaxOptions("mse")},
      {"pct99.9", "histogram", tq::calib::ComputeAmaxOptions("percentile").percentile(99.9)},
      {"pct99.99", "histogram", tq::calib::ComputeAmaxOptions("percentile").percentile(99.99)},
      {"pct99.999", "histogram", tq::calib::ComputeAmaxOptions("percentile").percentile(99.999)}};
  Result best{"", -1, 0};
  Net best_model{nullptr};
  std::vector<std::pair<std::string, float>> layer_amax;  // one layer's amax per method
  const std::string shown = "layer2.conv1._input_quantizer";
  std::shared_ptr<tq::calib::Calibrator> shown_hist;
  std::map<std::string, std::vector<float>> amax_by_method;  // activation quantizer -> amax each
  for (const auto& v : variants) {
    Net m = copy_of(model, width);
    const auto summary = calibrate_with(m, v.calibrator, v.method);
    const double top1 = evaluate(m, test_set, 500, "int8 " + v.name);
    results.push_back({"int8 " + v.name, top1, summary.seconds});
    std::cout << "int8 " << v.name << ": top-1 " << std::setprecision(2) << top1
              << "%  (calibration " << summary.seconds << " s)" << std::endl;
    for (auto& nq : tq::utils::named_quantizers(*m)) {
      if (nq.name.find("_weight_quantizer") != std::string::npos) continue;
      const float amax = nq.quantizer->amax().item<float>();
      amax_by_method[nq.name].push_back(amax);
      if (nq.name != shown) continue;
      layer_amax.emplace_back(v.name, amax);
      if (v.calibrator == "histogram" && !shown_hist)
        shown_hist = nq.quantizer->calibrator()->clone();
    }
    if (top1 > best.top1) {
      best = results.back();
      best_model = m;
    }
  }

  {
    std::ofstream csv(out / "activation_amax.csv");
    csv << "quantizer";
    for (const auto& v : variants) csv << "," << v.name;
    csv << "\n";
    for (const auto& [name, amaxes] : amax_by_method) {
      csv << name;
      for (float a : amaxes) csv << "," << a;
      csv << "\n";
    }
  }

  // 3. QAT: 10% of the float schedule at 1% of the learning rate, cosine decay, from the best PTQ.
  Net qat_model = copy_of(best_model, width);
  train(qat_model, train_set, std::max<int64_t>(1, epochs_x100 / 10), lr * 0.01, batch, "qat");
  const double qat_top1 = evaluate(qat_model, test_set, 500, "qat");
  results.push_back({"qat (" + best.variant.substr(5) + ")", qat_top1, best.calib_seconds});
  std::cout << "QAT top-1 " << qat_top1 << "%" << std::endl;

  // 4. Sensitivity of the best PTQ model, one layer in float at a time, on part of the test set.
  const Split sens_set{test_set.images.slice(0, 0, 2000), test_set.labels.slice(0, 0, 2000)};
  const auto sensitivity = tq::utils::sensitivity_analysis(
      *best_model, [&] { return evaluate(best_model, sens_set, 500); });
  std::ofstream(out / "sensitivity.csv") << tq::utils::sensitivity_csv(sensitivity);
  std::ofstream(out / "sensitivity.md") << "```\n"
                                        << tq::utils::sensitivity_table(sensitivity) << "```\n";

  // 5. Reports. The checkpoint uses pytorch_quantization's state names and loads in Python with
  // torch.load; the TensorRT cache names each activation tensor after the layer that reads it.
  tq::utils::save_state_dict(*qat_model, (out / "qat_int8.pt").string());
  const auto cache = tq::utils::write_calib_cache(
      *qat_model, (out / "qat_int8.cache").string(),
      tq::utils::CalibCacheOptions().tensor_name_fn(
          [](const std::string& quantizer) -> c10::optional<std::string> {
            const auto dot = quantizer.rfind('.');
            return quantizer.substr(0, dot) + ":" + quantizer.substr(dot + 2);  // conv1:input_...
          }));
  std::cout << "TensorRT calibration cache: " << cache.written.size() << " tensors" << std::endl;
  tq::utils::write_amax_json(*qat_model, (out / "amax.json").string());
  std::ofstream(out / "quantizers.json") << tq::utils::quantizer_summary_json(*qat_model);
  std::ostringstream md, json;
  md << std::fixed;
  json << std::fixed;
  md << "| variant | top-1 (%) | vs float | calibration (s) |\n|---|---|---|---|\n";
  json << "{\n  \"float_top1\": " << float_top1 << ",\n  \"variants\": [\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    md << "| " << r.variant << " | " << std::setprecision(2) << r.top1 << " | " << std::showpos
       << r.top1 - float_top1 << std::noshowpos << " | " << r.calib_seconds << " |\n";
    json << "    {\"variant\": \"" << r.variant << "\", \"top1\": " << std::setprecision(4)
         << r.top1 << ", \"delta\": " << r.top1 - float_top1
         << ", \"calibration_seconds\": " << r.calib_seconds << "}"
         << (i + 1 < results.size() ? "," : "") << "\n";
  }
  const double total = seconds_since(t_all);
  json << "  ],\n  \"total_seconds\": " << std::setprecision(1) << total << "\n}\n";
  std::ofstream(out / "results.md") << md.str();
  std::ofstream(out / "results.json") << json.str();
  bar_chart(results, out / "accuracy.png");
  if (shown_hist) {
    histogram_picture(dynamic_cast<const tq::calib::HistogramCalibrator&>(*shown_hist), layer_amax,
                      out / ("histogram_" + shown + ".png"));
  }
  std::cout << "\n"
            << md.str() << "\nmost sensitive layers:\n"
            << tq::utils::sensitivity_table(sensitivity) << "\nwritten to " << out << "  (total "
            << std::setprecision(1) << total << " s)" << std::endl;
  return 0;
}
