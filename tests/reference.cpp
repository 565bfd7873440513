#include "reference.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <fstream>
#include <map>

#include "test_helpers.h"

namespace torchquant {
namespace testing {
namespace {

struct Reference {
  nlohmann::json manifest;
  std::map<std::string, at::Tensor> tensors;
};

const Reference& reference() {
  static const Reference ref = [] {
    Reference r;
    const std::string dir = data_dir("TORCHQUANT_REFERENCE_DIR", TORCHQUANT_REFERENCE_DIR);
    std::ifstream f(dir + "/ref_manifest.json");
    if (!f) throw std::runtime_error("cannot open " + dir + "/ref_manifest.json");
    f >> r.manifest;
    torch::jit::script::Module m = torch::jit::load(dir + "/ref_cases.pt");
    for (const auto& b : m.named_buffers()) r.tensors[b.name] = b.value;
    return r;
  }();
  return ref;
}

}  // namespace

at::Tensor RefCase::tensor(const std::string& role) const {
  const auto& t = meta["tensors"];
  if (!t.contains(role)) throw std::runtime_error(name + " has no tensor " + role);
  return reference().tensors.at(t[role]["key"].get<std::string>());
}

bool RefCase::has(const std::string& role) const { return meta["tensors"].contains(role); }

std::vector<RefCase> reference_cases(const std::string& group) {
  std::vector<RefCase> out;
  for (const auto& c : reference().manifest["cases"]) {
    if (c["group"] == group) out.push_back(RefCase{c["name"].get<std::string>(), c});
  }
  return out;
}

std::string case_name(const RefCase& c) { return c.name; }

::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected,
                                     double atol, double rtol) {
  if (actual.scalar_type() != expected.scalar_type()) {
    return ::testing::AssertionFailure()
           << "dtype " << actual.scalar_type() << " != expected " << expected.scalar_type();
  }
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  const at::Tensor a = actual.cpu().to(at::kDouble), e = expected.cpu().to(at::kDouble);
  const at::Tensor nan_ok = a.isnan().eq(e.isnan());
  const at::Tensor close = (a - e).abs().le(atol + rtol * e.abs()).logical_or(e.isnan());
  const at::Tensor bad = nan_ok.logical_and(close).logical_not();
  const int64_t nbad = bad.sum().item<int64_t>();
  if (nbad == 0) return ::testing::AssertionSuccess();
  const int64_t first = bad.reshape({-1}).nonzero()[0].item<int64_t>();
  return ::testing::AssertionFailure()
         << nbad << " of " << a.numel() << " elements differ; first at flat index " << first
         << ": actual " << a.reshape({-1})[first].item<double>() << " expected "
         << e.reshape({-1})[first].item<double>() << " (atol " << atol << ", rtol " << rtol << ")";
}

}  // namespace testing
}  // namespace torchquant
