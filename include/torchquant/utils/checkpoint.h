#pragma once
/// \file
/// Checkpoints that move between Python and C++: a state dict saved by Python with
/// `torch.save(dict(model.state_dict()), f)` from a pytorch_quantization model loads into the
/// equivalent torchquant model (the quant layers use upstream's state names: `weight`, `bias`,
/// `_input_quantizer._amax`, `_weight_quantizer._amax`, `running_mean`, ...), and a file saved here
/// loads in Python with `torch.load(f)` as a dict of str -> Tensor.
///
/// Example:
/// \code
///   // Python: torch.save(dict(model.state_dict()), "qat.pt")
///   Net net;  // the same layers, written with torchquant::nn::QuantConv2d etc.
///   auto report = torchquant::utils::load_state_dict(net, "qat.pt");
///   std::cout << report.str();
///   torchquant::utils::save_state_dict(net, "qat_cpp.pt");
///   // Python: model.load_state_dict(torch.load("qat_cpp.pt"))
/// \endcode

#include <torch/arg.h>
#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace torchquant {
namespace utils {

/// Options of load_state_dict.
struct LoadOptions {
  /// Entries of the file that the model does not have are an error (true) or ignored and
  /// reported (false), as `strict` of PyTorch's `load_state_dict` for unexpected keys.
  TORCH_ARG(bool, strict) = true;
  /// Parameters and buffers of the model that the file lacks are an error (false) or left as
  /// they are and reported (true).
  TORCH_ARG(bool, allow_missing) = false;
};

/// What load_state_dict did, by dotted name.
struct LoadReport {
  /// Copied into an existing parameter or buffer.
  std::vector<std::string> loaded;
  /// `_amax` / `_pre_quant_scale` buffers created in TensorQuantizers that had none.
  std::vector<std::string> created;
  /// In the model but not in the file (only with allow_missing).
  std::vector<std::string> missing;
  /// In the file but not in the model (only with strict(false)).
  std::vector<std::string> unexpected;
  /// A readable summary (counts, then the missing and unexpected names).
  std::string str() const;
};

/// Loads a state dict file written by Python's `torch.save(dict(model.state_dict()), path)` or by
/// save_state_dict into `model`. Note the `dict(...)`: the `OrderedDict` that `state_dict()`
/// returns carries a `_metadata` attribute that LibTorch's unpickler cannot rebuild; such a file
/// is an error that says so.
///
/// Everything is validated before anything is copied: names missing in the file, unexpected
/// names (unless `strict(false)`), shape mismatches, values that are not tensors and dtype kinds
/// that do not convert (floating <-> integral, bool) are reported together in one error, and the
/// model is left untouched. A `<quantizer>._amax` (or `._pre_quant_scale`) in the file for a
/// TensorQuantizer that has none yet is not unexpected: it is created with `set_amax`
/// (`set_pre_quant_scale`) on the device of the quantizer, or of the nearest enclosing module
/// holding tensors. Copies keep the model's devices and dtypes. Tensors saved on a CUDA device
/// need a CUDA build to be read.
///
/// \code
///   auto report = torchquant::utils::load_state_dict(
///       model, "resnet_qat.pt", torchquant::utils::LoadOptions().strict(false));
///   for (const auto& name : report.unexpected) std::cout << "ignored " << name << '\n';
/// \endcode
LoadReport load_state_dict(torch::nn::Module& model, const std::string& path,
                           const LoadOptions& options = {});

/// Writes every parameter and buffer of `model` under its dotted name (module by module: its
/// parameters, then its buffers, then its children, as Python's `state_dict()` orders them) to
/// `path`, in the format Python's `torch.load(path)` reads as a dict of str -> Tensor. Tensors
/// keep their devices and dtypes.
///
/// \code
///   torchquant::utils::save_state_dict(model, "model_cpp.pt");
///   // Python: model.load_state_dict(torch.load("model_cpp.pt"))
/// \endcode
void save_state_dict(const torch::nn::Module& model, const std::string& path);

}  // namespace utils
}  // namespace torchquant
