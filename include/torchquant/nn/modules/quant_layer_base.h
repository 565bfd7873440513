#pragma once
/// \file
/// Bases of the quantized layers. A quant layer keeps a private float twin (built from the same
/// torch::nn options, so initialisation and printing are the float layer's) whose parameters and
/// buffers it registers under the float layer's names (`weight`, `bias`, `running_mean`, ...),
/// next to its TensorQuantizers `_input_quantizer` / `_weight_quantizer`: pytorch_quantization's
/// state names, so checkpoints move between Python and C++.

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>

#include "torchquant/nn/modules/quant_layer.h"
#include "torchquant/nn/modules/tensor_quantizer.h"

namespace torchquant {
namespace nn {
namespace detail {

/// The float layer's pretty_print with its class name replaced by `name`.
std::string renamed_print(const torch::nn::Module& twin, const std::string& name);

/// When `name` is `member_name`: points `member` and the child of that name at `quantizer`
/// (which must be a TensorQuantizer) and returns true.
bool rebind(torch::nn::Module& owner, const std::string& name,
            const std::shared_ptr<torch::nn::Module>& quantizer, const std::string& member_name,
            TensorQuantizer* member);

}  // namespace detail

/// Base of every quant layer: the float twin, its state registered at top level, the input
/// quantizer, and `from_float` adoption of an existing float layer's tensors.
template <typename Derived, typename FloatHolder,
          typename OptionsT =
              std::decay_t<decltype(std::declval<typename FloatHolder::Impl>().options)>>
class QuantLayerBase : public torch::nn::Cloneable<Derived>,
                       public QuantDefaults<Derived>,
                       public QuantizerOwner {
 public:
  using FloatImpl = typename FloatHolder::Impl;
  using Options = OptionsT;

  /// `twin`: an existing float layer to compute with (from_float), else a fresh one is built.
  QuantLayerBase(Options options_, QuantLayerOptions quant, FloatHolder twin)
      : options(std::move(options_)), quant_options(std::move(quant)), twin_(std::move(twin)) {
    if (!quant_options.quant_desc_input()) {
      quant_options.quant_desc_input(Derived::default_quant_desc_input());
    }
    if (!quant_options.quant_desc_weight()) {
      quant_options.quant_desc_weight(Derived::default_quant_desc_weight());
    }
  }

  /// Builds a fresh float twin from `options` (except right after adopting one in the
  /// constructor) and registers its state and the quantizers.
  void reset() override {
    if (!twin_ || reset_done_) twin_ = FloatHolder(options);
    reset_done_ = true;
    for (const auto& p : twin_->named_parameters(/*recurse=*/false)) {
      this->register_parameter(p.key(), p.value(), p.value().requires_grad());
    }
    for (const auto& b : twin_->named_buffers(/*recurse=*/false)) {
      this->register_buffer(b.key(), b.value());
    }
    _input_quantizer = this->register_module("_input_quantizer",
                                             TensorQuantizer(*quant_options.quant_desc_input()));
    // Virtual, not a CRTP call: reset() runs from the constructors of the intermediate bases,
    // before Derived exists (a downcast to it there is undefined behaviour; UBSan reports it).
    reset_quantizers();
  }

  void pretty_print(std::ostream& stream) const override {
    stream << detail::renamed_print(*twin_, Derived::kName);
  }

  bool rebind_quantizer(const std::string& name,
                        const std::shared_ptr<torch::nn::Module>& quantizer) override {
    return detail::rebind(*this, name, quantizer, "_input_quantizer", &_input_quantizer);
  }

  /// The float twin (shares every parameter and buffer with this layer).
  FloatHolder float_module() const { return twin_; }

  /// A quant layer computing with `float_layer`'s tensors (shared, not copied): the C++
  /// `from_float`. Its options are the float layer's.
  static std::shared_ptr<Derived> from_float(const std::shared_ptr<FloatImpl>& float_layer,
                                             QuantLayerOptions quant = {}) {
    TORCH_CHECK(float_layer != nullptr, Derived::kName, "::from_float: got a null module");
    return std::make_shared<Derived>(Derived::options_from(*float_layer), std::move(quant),
                                     FloatHolder(float_layer));
  }

  Options options;
  QuantLayerOptions quant_options;
  TensorQuantizer _input_quantizer{nullptr};

  // Hooks for the derived bases (public so that the CRTP calls need no friendship).
  /// Registers the quantizers beyond the input one (default: none).
  virtual void reset_quantizers() {}
  /// The options of an existing float layer (default: its `options` member as is).
  static Options options_from(const FloatImpl& float_layer) { return float_layer.options; }

 protected:
  FloatHolder twin_{nullptr};
  bool reset_done_ = false;
};

/// Base of the layers with a quantized weight (Conv, ConvTranspose, Linear): `weight` and `bias`
/// members and the `_weight_quantizer`.
template <typename Derived, typename FloatHolder,
          typename OptionsT =
              std::decay_t<decltype(std::declval<typename FloatHolder::Impl>().options)>>
class QuantWeightLayer : public QuantLayerBase<Derived, FloatHolder, OptionsT> {
 public:
  using Base = QuantLayerBase<Derived, FloatHolder, OptionsT>;
  using Base::Base;
  using typename Base::Options;

  at::Tensor weight;
  /// Undefined without bias.
  at::Tensor bias;
  TensorQuantizer _weight_quantizer{nullptr};

  bool rebind_quantizer(const std::string& name,
                        const std::shared_ptr<torch::nn::Module>& quantizer) override {
    return Base::rebind_quantizer(name, quantizer) ||
           detail::rebind(*this, name, quantizer, "_weight_quantizer", &_weight_quantizer);
  }

  /// (input, weight) through their quantizers, or unchanged while quant_modules are deactivated.
  std::pair<at::Tensor, at::Tensor> quantized_operands(const at::Tensor& input) {
    if (!quant_modules::is_active()) return {input, weight};
    return {this->_input_quantizer(input), _weight_quantizer(weight)};
  }

  void reset_quantizers() override {
    _weight_quantizer = this->register_module(
        "_weight_quantizer", TensorQuantizer(*this->quant_options.quant_desc_weight()));
    weight = this->named_parameters(false)["weight"];
    bias = this->named_parameters(false).contains("bias") ? this->named_parameters(false)["bias"]
                                                          : at::Tensor();
  }
};

/// Base of the layers that quantize their input only (pooling, InstanceNorm): forward is the
/// float layer's on the quantized input.
template <typename Derived, typename FloatHolder>
class QuantInputLayer : public QuantLayerBase<Derived, FloatHolder> {
 public:
  using Base = QuantLayerBase<Derived, FloatHolder>;
  using Base::Base;

  at::Tensor forward(const at::Tensor& input) {
    return this->twin_->forward(quant_modules::is_active() ? this->_input_quantizer(input) : input);
  }

  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  /// Unused (no weight); present so that the default-descriptor helpers work for every layer.
  static QuantDescriptor initial_quant_desc_weight() { return QUANT_DESC_8BIT_PER_TENSOR(); }
};

}  // namespace nn
}  // namespace torchquant
