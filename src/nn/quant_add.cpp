#include "torchquant/nn/modules/quant_add.h"

#include <ATen/ATen.h>

#include <ostream>

#include "torchquant/nn/modules/quant_layer_base.h"

namespace torchquant {
namespace nn {

QuantAddImpl::QuantAddImpl(QuantAddOptions options_) : options(std::move(options_)) { reset(); }

void QuantAddImpl::reset() {
  _input0_quantizer =
      register_module("_input0_quantizer", TensorQuantizer(options.quant_desc_input()));
  if (options.quantize_both()) {
    _input1_quantizer =
        register_module("_input1_quantizer", TensorQuantizer(options.quant_desc_input()));
  }
}

at::Tensor QuantAddImpl::forward(const at::Tensor& a, const at::Tensor& b) {
  if (!quant_modules::is_active()) return a + b;
  return _input0_quantizer(a) + (_input1_quantizer ? _input1_quantizer(b) : b);
}

bool QuantAddImpl::rebind_quantizer(const std::string& name,
                                    const std::shared_ptr<torch::nn::Module>& quantizer) {
  return detail::rebind(*this, name, quantizer, "_input0_quantizer", &_input0_quantizer) ||
         detail::rebind(*this, name, quantizer, "_input1_quantizer", &_input1_quantizer);
}

void QuantAddImpl::pretty_print(std::ostream& stream) const {
  stream << "torchquant::nn::QuantAdd(quantize_both="
         << (options.quantize_both() ? "true" : "false") << ")";
}

QuantConcatImpl::QuantConcatImpl(QuantConcatOptions options_) : options(std::move(options_)) {
  reset();
}

void QuantConcatImpl::reset() {
  _input_quantizer =
      register_module("_input_quantizer", TensorQuantizer(options.quant_desc_input()));
}

at::Tensor QuantConcatImpl::forward(const std::vector<at::Tensor>& inputs) {
  TORCH_CHECK_VALUE(!inputs.empty(), "QuantConcat::forward: expected at least one input");
  if (!quant_modules::is_active()) return at::cat(inputs, options.dim());
  std::vector<at::Tensor> quantized;
  quantized.reserve(inputs.size());
  for (const auto& x : inputs) quantized.push_back(_input_quantizer(x));
  return at::cat(quantized, options.dim());
}

bool QuantConcatImpl::rebind_quantizer(const std::string& name,
                                       const std::shared_ptr<torch::nn::Module>& quantizer) {
  return detail::rebind(*this, name, quantizer, "_input_quantizer", &_input_quantizer);
}

void QuantConcatImpl::pretty_print(std::ostream& stream) const {
  stream << "torchquant::nn::QuantConcat(dim=" << options.dim() << ")";
}

}  // namespace nn
}  // namespace torchquant
