#pragma once
/// \file
/// QuantLSTM and QuantLSTMCell: torch::nn::LSTM / LSTMCell whose matrix products see quantized
/// operands (mirror `pytorch_quantization.nn.QuantLSTM` / `QuantLSTMCell`).
///
/// At every time step the input quantizer sees the fused activation `cat([x_t, h_{t-1}], 1)` and
/// the weight quantizer the fused weight `cat([W_ih, W_hh], 1)` (per row by default), as one fused
/// GEMM per step would at inference; then `gates = linear(x_q, W_ih_q, b_ih) +
/// linear(h_q, W_hh_q, b_hh)` with torch's gate order (i, f, g, o). The biases are not quantized.
///
/// Example:
/// \code
///   namespace tqnn = torchquant::nn;
///   tqnn::QuantLSTM lstm(torch::nn::LSTMOptions(80, 256).num_layers(2));
///   auto [output, state] = lstm(torch::randn({50, 8, 80}));  // [seq, batch, feature]
///   auto [h_n, c_n] = state;
/// \endcode

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any_value.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/options/rnn.h>
#include <torch/nn/pimpl.h>

#include <iosfwd>
#include <memory>
#include <tuple>
#include <vector>

#include "torchquant/nn/modules/quant_layer.h"
#include "torchquant/nn/modules/tensor_quantizer.h"
#include "torchquant/quant_descriptor.h"

namespace torchquant {
namespace nn {

/// An LSTM cell with quantized operands. Takes torch::nn::LSTMCellOptions, so a model written
/// against a namespace alias switches between float and quantized cells with one line.
///
/// State: `weight_ih` [4*hidden, input], `weight_hh` [4*hidden, hidden], `bias_ih`, `bias_hh`
/// [4*hidden] (torch::nn::LSTMCell's names, shapes and initialisation; undefined without bias),
/// and the children `_input_quantizer` (default 8 bit per tensor) and `_weight_quantizer`
/// (default 8 bit per row): pytorch_quantization's state names.
///
/// forward(input [batch, input_size], optional (h, c) [batch, hidden]) returns (h', c'); without
/// a state it starts from zeros. While `quant_modules::deactivate()` is in force it computes
/// exactly torch::nn::LSTMCell (`torch::lstm_cell`).
///
/// \code
///   torchquant::nn::QuantLSTMCell cell(torch::nn::LSTMCellOptions(10, 20));
///   at::Tensor h = torch::zeros({3, 20}), c = torch::zeros({3, 20});
///   for (const at::Tensor& x_t : torch::randn({6, 3, 10}).unbind(0)) {
///     std::tie(h, c) = cell(x_t, std::make_tuple(h, c));
///   }
/// \endcode
class QuantLSTMCellImpl : public torch::nn::Cloneable<QuantLSTMCellImpl>,
                          public QuantDefaults<QuantLSTMCellImpl> {
 public:
  using FloatImpl = torch::nn::LSTMCellImpl;
  static constexpr const char* kName = "torchquant::nn::QuantLSTMCell";

  QuantLSTMCellImpl(int64_t input_size, int64_t hidden_size)
      : QuantLSTMCellImpl(torch::nn::LSTMCellOptions(input_size, hidden_size)) {}
  /// Unset descriptors in `quant` take the class defaults (`default_quant_desc_input()` /
  /// `default_quant_desc_weight()`) now.
  explicit QuantLSTMCellImpl(torch::nn::LSTMCellOptions options, QuantLayerOptions quant = {});

  /// Registers freshly initialised parameters (as torch::nn::LSTMCell) and new quantizers.
  void reset() override;
  /// Redraws every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch does.
  void reset_parameters();

  /// One step: returns (h', c'), each [batch, hidden_size].
  std::tuple<at::Tensor, at::Tensor> forward(
      const at::Tensor& input, c10::optional<std::tuple<at::Tensor, at::Tensor>> hx = c10::nullopt);

  /// torch::nn::LSTMCell's text under this class's name, e.g.
  /// `torchquant::nn::QuantLSTMCell(10, 20)` or `torchquant::nn::QuantLSTMCell(10, 20,
  /// bias=false)`.
  void pretty_print(std::ostream& stream) const override;

  /// A quantized cell computing with `float_cell`'s parameters: the tensors are shared, not
  /// copied, so training either one updates both. Draws no random numbers.
  ///
  /// \code
  ///   torch::nn::LSTMCell cell(torch::nn::LSTMCellOptions(10, 20));
  ///   auto qcell = torchquant::nn::QuantLSTMCellImpl::from_float(cell.ptr());
  /// \endcode
  static std::shared_ptr<QuantLSTMCellImpl> from_float(
      const std::shared_ptr<torch::nn::LSTMCellImpl>& float_cell, QuantLayerOptions quant = {});

  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  static QuantDescriptor initial_quant_desc_weight() {
    return QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW();
  }

  torch::nn::LSTMCellOptions options;
  /// The descriptors the quantizers are (re)built from; both set after construction.
  QuantLayerOptions quant_options;

  at::Tensor weight_ih;
  at::Tensor weight_hh;
  /// Undefined without bias.
  at::Tensor bias_ih;
  /// Undefined without bias.
  at::Tensor bias_hh;
  TensorQuantizer _input_quantizer{nullptr};
  TensorQuantizer _weight_quantizer{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS(
      {1, torch::nn::AnyValue(c10::optional<std::tuple<at::Tensor, at::Tensor>>())})

 private:
  struct NoInit {};
  QuantLSTMCellImpl(torch::nn::LSTMCellOptions options, QuantLayerOptions quant, NoInit);
  void register_state(bool initialise);
  void bind_parameters();
};
TORCH_MODULE(QuantLSTMCell);

/// A multi-layer, optionally bidirectional LSTM with quantized operands. Takes
/// torch::nn::LSTMOptions, so a model written against a namespace alias switches between float
/// and quantized LSTMs with one line.
///
/// State: torch::nn::LSTM's parameters (`weight_ih_l{k}[_reverse]`, `weight_hh_l{k}[_reverse]`,
/// `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]`, same order, shapes and initialisation) and
/// the ModuleLists `_input_quantizers` / `_weight_quantizers`, one TensorQuantizer per layer and
/// direction (index `layer * num_directions + direction`): pytorch_quantization's state names.
///
/// forward(input, optional (h0, c0)) returns (output, (h_n, c_n)) as torch::nn::LSTM: input
/// [seq, batch, input_size] ([batch, seq, input_size] with batch_first), h0 / c0
/// [num_layers * num_directions, batch, hidden_size] (zeros when not given). Dropout between
/// layers applies in training, as torch's. proj_size is not supported (nor is it upstream).
/// While `quant_modules::deactivate()` is in force it computes exactly torch::nn::LSTM
/// (`torch::lstm`).
///
/// The input quantizer runs at every step (its dynamic amax changes with h). The weight quantizer
/// runs once per forward for each layer and direction (the fused weight is the same at every step,
/// so the result and gradients are the same as upstream's per-step quantization), except while it
/// calibrates: then it runs at every step, so its calibrator collects exactly what upstream's does.
///
/// \code
///   namespace tqnn = torchquant::nn;
///   tqnn::QuantLSTM lstm(torch::nn::LSTMOptions(5, 4).bidirectional(true).batch_first(true));
///   at::Tensor x = torch::randn({2, 7, 5});
///   auto [y, state] = lstm(x);  // y: [2, 7, 8]
///   lstm->input_quantizer(0, /*direction=*/1)->disable();
/// \endcode
class QuantLSTMImpl : public torch::nn::Cloneable<QuantLSTMImpl>,
                      public QuantDefaults<QuantLSTMImpl> {
 public:
  using FloatImpl = torch::nn::LSTMImpl;
  static constexpr const char* kName = "torchquant::nn::QuantLSTM";

  QuantLSTMImpl(int64_t input_size, int64_t hidden_size)
      : QuantLSTMImpl(torch::nn::LSTMOptions(input_size, hidden_size)) {}
  /// Unset descriptors in `quant` take the class defaults (`default_quant_desc_input()` /
  /// `default_quant_desc_weight()`) now. proj_size other than 0 is an error.
  explicit QuantLSTMImpl(torch::nn::LSTMOptions options, QuantLayerOptions quant = {});

  /// Registers freshly initialised parameters (as torch::nn::LSTM) and new quantizers.
  void reset() override;
  /// Redraws every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch does.
  void reset_parameters();

  std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>> forward(
      const at::Tensor& input, c10::optional<std::tuple<at::Tensor, at::Tensor>> hx = c10::nullopt);

  /// torch::nn::LSTM's text under this class's name, e.g. `torchquant::nn::QuantLSTM(input_size=5,
  /// hidden_size=4, num_layers=2, bias=true, batch_first=false, dropout=0, bidirectional=false)`.
  void pretty_print(std::ostream& stream) const override;

  /// A quantized LSTM computing with `float_lstm`'s parameters: the tensors are shared, not
  /// copied, so training either one updates both. Draws no random numbers.
  ///
  /// \code
  ///   torch::nn::LSTM lstm(torch::nn::LSTMOptions(5, 4).num_layers(2));
  ///   auto qlstm = torchquant::nn::QuantLSTMImpl::from_float(lstm.ptr());
  /// \endcode
  static std::shared_ptr<QuantLSTMImpl> from_float(
      const std::shared_ptr<torch::nn::LSTMImpl>& float_lstm, QuantLayerOptions quant = {});

  static QuantDescriptor initial_quant_desc_input() { return QUANT_DESC_8BIT_PER_TENSOR(); }
  static QuantDescriptor initial_quant_desc_weight() {
    return QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW();
  }

  /// 2 when bidirectional, else 1.
  int64_t num_directions() const { return options.bidirectional() ? 2 : 1; }
  /// The parameters in torch::nn::LSTM's flat order: per layer, per direction,
  /// (weight_ih, weight_hh[, bias_ih, bias_hh]).
  std::vector<at::Tensor> flat_weights() const;
  /// The input quantizer of `layer` and `direction` (0 forward, 1 reverse).
  TensorQuantizer input_quantizer(int64_t layer, int64_t direction = 0) const;
  /// The weight quantizer of `layer` and `direction` (0 forward, 1 reverse).
  TensorQuantizer weight_quantizer(int64_t layer, int64_t direction = 0) const;

  torch::nn::LSTMOptions options;
  /// The descriptors the quantizers are (re)built from; both set after construction.
  QuantLayerOptions quant_options;
  torch::nn::ModuleList _input_quantizers{nullptr};
  torch::nn::ModuleList _weight_quantizers{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS(
      {1, torch::nn::AnyValue(c10::optional<std::tuple<at::Tensor, at::Tensor>>())})

 private:
  struct NoInit {};
  QuantLSTMImpl(torch::nn::LSTMOptions options, QuantLayerOptions quant, NoInit);
  void register_state(bool initialise);
  int64_t quantizer_index(int64_t layer, int64_t direction, const char* where) const;
};
TORCH_MODULE(QuantLSTM);

}  // namespace nn
}  // namespace torchquant
