// State dicts across Python and C++: torch::pickle_load / pickle_save read and write the zip
// format of Python's torch.save, so a dict of str -> Tensor moves both ways. Loading plans every
// copy first and applies nothing unless the whole plan is valid.

#include "torchquant/utils/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <unordered_map>

#include "torchquant/nn/modules/tensor_quantizer.h"
#include "utils/module_device.h"

namespace torchquant {
namespace utils {
namespace {

constexpr const char* kLoad = "torchquant::utils::load_state_dict";
constexpr const char* kSave = "torchquant::utils::save_state_dict";

// One parameter or buffer of the model under its dotted name.
struct Slot {
  std::string name;
  at::Tensor tensor;
};

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Module by module: its parameters, its buffers, then its children (Python's state_dict order).
std::vector<Slot> model_state(const torch::nn::Module& model) {
  std::vector<Slot> slots;
  model.apply([&](const std::string& prefix, const torch::nn::Module& m) {
    for (const auto& p : m.named_parameters(/*recurse=*/false)) {
      slots.push_back({join(prefix, p.key()), p.value()});
    }
    for (const auto& b : m.named_buffers(/*recurse=*/false)) {
      if (b.value().defined()) slots.push_back({join(prefix, b.key()), b.value()});
    }
  });
  return slots;
}

// Floating, integral, bool, complex or other: copy_ converts within a kind only.
int dtype_kind(at::ScalarType t) {
  if (t == at::kBool) return 0;
  if (at::isComplexType(t)) return 3;
  if (at::isFloatingType(t)) return 1;
  if (at::isIntegralType(t, /*includeBool=*/false)) return 2;
  return 4;
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

std::vector<char> read_bytes(const std::string& path, const char* fn) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), fn, ": cannot open '", path, "' for reading");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TORCH_CHECK(!in.bad(), fn, ": error while reading '", path, "'");
  return bytes;
}

// torch::pickle_save's format (a torch.save zip archive) without the type tags that LibTorch puts
// on containers: Python's torch.load (weights_only=True, the default since 2.6) refuses the
// torch.jit._pickle.restore_type_tag global those tags need.
std::vector<char> pickle_for_python(const c10::IValue& value) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t size) { pickled.insert(pickled.end(), buf, buf + size); },
      nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return archive;
}

// A buffer the file may create in a TensorQuantizer that lacks it.
struct Creation {
  std::string name;
  nn::TensorQuantizerImpl* quantizer;
  bool is_amax;
  at::Tensor value;
  c10::Device device;
};

}  // namespace

std::string LoadReport::str() const {
  std::ostringstream s;
  s << "loaded " << loaded.size() << ", created " << created.size() << ", missing "
    << missing.size() << ", unexpected " << unexpected.size();
  for (const auto& n : created) s << "\n  created: " << n;
  for (const auto& n : missing) s << "\n  missing: " << n;
  for (const auto& n : unexpected) s << "\n  unexpected: " << n;
  return s.str();
}

LoadReport load_state_dict(torch::nn::Module& model, const std::string& path,
                           const LoadOptions& options) {
  const std::vector<char> bytes = read_bytes(path, kLoad);
  TORCH_CHECK(!bytes.empty(), kLoad, ": '", path, "' is empty");
  c10::IValue loaded;
  auto unreadable = [&](const char* why) {
    TORCH_CHECK(false, kLoad, ": cannot read '", path,
                "' as a torch.save file (truncated, not written by torch.save / "
                "save_state_dict, or a state_dict() OrderedDict, which LibTorch's reader cannot "
                "rebuild: save torch.save(dict(model.state_dict()), f)): ",
                why);
  };
  try {
    loaded = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    unreadable(e.what_without_backtrace());
  } catch (const std::exception& e) {
    unreadable(e.what());
  }
  TORCH_CHECK(loaded.isGenericDict(), kLoad, ": '", path,
              "' does not hold a dict of str -> Tensor but a ", loaded.tagKind(),
              " (save it with torch.save(dict(model.state_dict()), f))");

  std::vector<std::string> problems;
  bool any_missing = false;
  bool any_unexpected = false;
  // The file's entries, in file order.
  std::vector<std::pair<std::string, at::Tensor>> file;
  for (const auto& item : loaded.toGenericDict()) {
    if (!item.key().isString()) {
      problems.push_back("key " + item.key().tagKind() + " is not a string");
      continue;
    }
    const std::string name = item.key().toStringRef();
    if (!item.value().isTensor()) {
      problems.push_back("'" + name + "' holds a value of kind " + item.value().tagKind() +
                         ", not a tensor");
      continue;
    }
    file.emplace_back(name, item.value().toTensor());
  }
  std::unordered_map<std::string, size_t> file_index;
  for (size_t i = 0; i < file.size(); ++i) file_index.emplace(file[i].first, i);

  const std::vector<Slot> state = model_state(model);
  std::unordered_map<std::string, torch::nn::Module*> modules;
  model.apply([&](const std::string& name, torch::nn::Module& m) { modules.emplace(name, &m); });

  LoadReport report;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (model tensor, file tensor)
  std::unordered_map<std::string, bool> in_model;
  for (const Slot& slot : state) {
    in_model.emplace(slot.name, true);
    auto it = file_index.find(slot.name);
    if (it == file_index.end()) {
      if (options.allow_missing()) {
        report.missing.push_back(slot.name);
      } else {
        any_missing = true;
        problems.push_back("missing in the file: '" + slot.name + "' (model shape " +
                           shape_str(slot.tensor) + ")");
      }
      continue;
    }
    const at::Tensor& src = file[it->second].second;
    bool ok = true;
    if (src.layout() != at::kStrided) {
      problems.push_back("'" + slot.name + "' is not a dense tensor in the file");
      continue;
    }
    if (src.sizes() != slot.tensor.sizes()) {
      problems.push_back("shape mismatch: '" + slot.name + "' is " + shape_str(src) +
                         " in the file but " + shape_str(slot.tensor) + " in the model");
      ok = false;
    }
    if (dtype_kind(src.scalar_type()) != dtype_kind(slot.tensor.scalar_type())) {
      problems.push_back(std::string("dtype mismatch: '") + slot.name + "' is " +
                         c10::toString(src.scalar_type()) + " in the file but " +
                         c10::toString(slot.tensor.scalar_type()) + " in the model");
      ok = false;
    }
    if (ok) {
      copies.emplace_back(slot.tensor, src);
      report.loaded.push_back(slot.name);
    }
  }

  std::vector<Creation> creations;
  for (const auto& [name, src] : file) {
    if (in_model.count(name)) continue;
    // `<quantizer>._amax` / `<quantizer>._pre_quant_scale` for a quantizer that has none yet.
    const auto dot = name.rfind('.');
    const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    const std::string owner = dot == std::string::npos ? std::string() : name.substr(0, dot);
    if (leaf == "_amax" || leaf == "_pre_quant_scale") {
      auto it = modules.find(owner);
      auto* q = it == modules.end() ? nullptr : dynamic_cast<nn::TensorQuantizerImpl*>(it->second);
      if (q != nullptr) {
        if (!at::isFloatingType(src.scalar_type()) || src.layout() != at::kStrided) {
          problems.push_back("dtype mismatch: '" + name +
                             "' must be a dense floating tensor, got " +
                             c10::toString(src.scalar_type()));
        } else {
          creations.push_back(
              {name, q, leaf == "_amax", src, detail::nearest_device(owner, modules)});
        }
        continue;
      }
    }
    if (options.strict()) {
      any_unexpected = true;
      problems.push_back("unexpected in the file: '" + name + "' (shape " + shape_str(src) + ")");
    } else {
      report.unexpected.push_back(name);
    }
  }

  if (!problems.empty()) {
    std::ostringstream msg;
    msg << kLoad << ": '" << path << "' does not match the model (" << problems.size()
        << (problems.size() == 1 ? " problem" : " problems") << "); the model was not changed:";
    for (const auto& p : problems) msg << "\n  " << p;
    if (any_unexpected) msg << "\n(LoadOptions().strict(false) ignores unexpected entries)";
    if (any_missing) msg << "\n(LoadOptions().allow_missing(true) ignores missing entries)";
    TORCH_CHECK(false, msg.str());
  }

  at::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  for (const Creation& c : creations) {
    const at::Tensor value = c.value.to(c.device);
    if (c.is_amax) {
      c.quantizer->set_amax(value);
    } else {
      c.quantizer->set_pre_quant_scale(value);
    }
    // A quantizer without tensors creates its buffers on the CPU; move it next to its layer.
    const at::Tensor created = c.is_amax ? c.quantizer->amax() : c.quantizer->pre_quant_scale();
    if (created.device() != c.device) c.quantizer->to(c.device);
    report.created.push_back(c.name);
  }
  return report;
}

void save_state_dict(const torch::nn::Module& model, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const Slot& s : model_state(model)) {
    if (!dict.contains(s.name)) dict.insert(s.name, s.tensor.detach());
  }
  const std::vector<char> bytes = pickle_for_python(c10::IValue(dict));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  TORCH_CHECK(out.good(), kSave, ": cannot open '", path, "' for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  TORCH_CHECK(out.good(), kSave, ": error while writing '", path, "'");
}

}  // namespace utils
}  // namespace torchquant
