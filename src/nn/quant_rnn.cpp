#include "torchquant/nn/modules/quant_rnn.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>
#include <ostream>
#include <string>
#include <utility>

namespace torchquant {
namespace nn {
namespace {

/// Resolves unset descriptors to the class defaults of `Layer`.
template <typename Layer>
QuantLayerOptions resolve_descriptors(QuantLayerOptions quant) {
  if (!quant.quant_desc_input()) quant.quant_desc_input(Layer::default_quant_desc_input());
  if (!quant.quant_desc_weight()) quant.quant_desc_weight(Layer::default_quant_desc_weight());
  return quant;
}

/// The quantized operands of one layer and direction (views into one fused quantized weight).
struct QuantizedWeights {
  at::Tensor w_ih;
  at::Tensor w_hh;
};

/// The weight quantizer on the fused weight cat([w_ih, w_hh], 1), split back into its halves.
QuantizedWeights quantize_weights(TensorQuantizerImpl& quantizer, const at::Tensor& w_ih,
                                  const at::Tensor& w_hh) {
  const at::Tensor fused = quantizer.forward(at::cat({w_ih, w_hh}, 1));
  return {fused.narrow(1, 0, w_ih.size(1)), fused.narrow(1, w_ih.size(1), w_hh.size(1))};
}

/// One LSTM step with pytorch_quantization's operand order: the input quantizer on the fused
/// activation cat([x, h], 1), then linear(x_q, w_ih_q, b_ih) + linear(h_q, w_hh_q, b_hh) (two
/// products, as upstream, so that the sums round the same way), gates in torch's order i, f, g, o.
std::tuple<at::Tensor, at::Tensor> quant_lstm_step(const at::Tensor& x, const at::Tensor& h,
                                                   const at::Tensor& c, const QuantizedWeights& w,
                                                   const at::Tensor& b_ih, const at::Tensor& b_hh,
                                                   TensorQuantizerImpl& input_quantizer) {
  const at::Tensor xh = input_quantizer.forward(at::cat({x, h}, 1));
  const at::Tensor x_q = xh.narrow(1, 0, x.size(1));
  const at::Tensor h_q = xh.narrow(1, x.size(1), h.size(1));
  const at::Tensor gates = at::linear(x_q, w.w_ih, b_ih) + at::linear(h_q, w.w_hh, b_hh);
  const std::vector<at::Tensor> g = gates.chunk(4, 1);
  const at::Tensor in_gate = at::sigmoid(g[0]);
  const at::Tensor forget_gate = at::sigmoid(g[1]);
  const at::Tensor cell_gate = at::tanh(g[2]);
  const at::Tensor out_gate = at::sigmoid(g[3]);
  at::Tensor c_next = forget_gate * c + in_gate * cell_gate;
  at::Tensor h_next = out_gate * at::tanh(c_next);
  return {std::move(h_next), std::move(c_next)};
}

/// Checks that a state tensor has `expected` shape.
void check_state(const at::Tensor& t, const char* where, const char* name, at::IntArrayRef expected,
                 const char* layout) {
  TORCH_CHECK(t.defined(), where, ": ", name, " is an undefined tensor (expected shape ", expected,
              ")");
  TORCH_CHECK(t.sizes() == expected, where, ": expected ", name, " of shape ", expected, " (",
              layout, "), got ", t.sizes());
}

const char* bool_str(bool b) { return b ? "true" : "false"; }

}  // namespace

// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~ QuantLSTMCell ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

QuantLSTMCellImpl::QuantLSTMCellImpl(torch::nn::LSTMCellOptions options_, QuantLayerOptions quant)
    : options(std::move(options_)),
      quant_options(resolve_descriptors<QuantLSTMCellImpl>(std::move(quant))) {
  reset();
}

QuantLSTMCellImpl::QuantLSTMCellImpl(torch::nn::LSTMCellOptions options_, QuantLayerOptions quant,
                                     NoInit)
    : options(std::move(options_)),
      quant_options(resolve_descriptors<QuantLSTMCellImpl>(std::move(quant))) {
  register_state(/*initialise=*/false);
}

void QuantLSTMCellImpl::reset() { register_state(/*initialise=*/true); }

void QuantLSTMCellImpl::register_state(bool initialise) {
  const int64_t input_size = options.input_size();
  const int64_t hidden_size = options.hidden_size();
  TORCH_CHECK_VALUE(input_size > 0 && hidden_size > 0, kName,
                    ": input_size and hidden_size must be positive, got input_size=", input_size,
                    ", hidden_size=", hidden_size);
  const int64_t gate_size = 4 * hidden_size;
  // torch::nn::LSTMCell's registration order, so that initialisation draws the same numbers.
  register_parameter("weight_ih", at::empty({gate_size, input_size}));
  register_parameter("weight_hh", at::empty({gate_size, hidden_size}));
  if (options.bias()) {
    register_parameter("bias_ih", at::empty({gate_size}));
    register_parameter("bias_hh", at::empty({gate_size}));
  } else {
    register_parameter("bias_ih", at::Tensor(), /*requires_grad=*/false);
    register_parameter("bias_hh", at::Tensor(), /*requires_grad=*/false);
  }
  bind_parameters();
  if (initialise) reset_parameters();
  _input_quantizer =
      register_module("_input_quantizer", TensorQuantizer(*quant_options.quant_desc_input()));
  _weight_quantizer =
      register_module("_weight_quantizer", TensorQuantizer(*quant_options.quant_desc_weight()));
}

void QuantLSTMCellImpl::bind_parameters() {
  weight_ih = parameters_["weight_ih"];
  weight_hh = parameters_["weight_hh"];
  bias_ih = parameters_["bias_ih"];
  bias_hh = parameters_["bias_hh"];
}

void QuantLSTMCellImpl::reset_parameters() {
  const double stdv = 1.0 / std::sqrt(static_cast<double>(options.hidden_size()));
  for (at::Tensor& p : parameters(/*recurse=*/false)) torch::nn::init::uniform_(p, -stdv, stdv);
}

std::tuple<at::Tensor, at::Tensor> QuantLSTMCellImpl::forward(
    const at::Tensor& input, c10::optional<std::tuple<at::Tensor, at::Tensor>> hx) {
  constexpr const char* where = "QuantLSTMCell::forward";
  TORCH_CHECK(input.defined(), where, ": input is an undefined tensor");
  TORCH_CHECK(input.dim() == 2, where, ": expected a 2-D input [batch, input_size], got a ",
              input.dim(), "-D input of shape ", input.sizes());
  TORCH_CHECK(input.size(1) == options.input_size(), where, ": input.size(1) is ", input.size(1),
              " but input_size is ", options.input_size(), " (input shape ", input.sizes(), ")");
  const std::vector<int64_t> state_shape{input.size(0), options.hidden_size()};
  at::Tensor h, c;
  if (hx) {
    std::tie(h, c) = *hx;
    check_state(h, where, "h_0", state_shape, "batch, hidden_size");
    check_state(c, where, "c_0", state_shape, "batch, hidden_size");
  } else {
    h = at::zeros(state_shape, input.options());
    c = h;
  }
  if (!quant_modules::is_active()) {
    return at::lstm_cell(input, {h, c}, weight_ih, weight_hh, bias_ih, bias_hh);
  }
  const QuantizedWeights w = quantize_weights(*_weight_quantizer, weight_ih, weight_hh);
  return quant_lstm_step(input, h, c, w, bias_ih, bias_hh, *_input_quantizer);
}

void QuantLSTMCellImpl::pretty_print(std::ostream& stream) const {
  stream << kName << "(" << options.input_size() << ", " << options.hidden_size();
  if (!options.bias()) stream << ", bias=false";
  stream << ")";
}

std::shared_ptr<QuantLSTMCellImpl> QuantLSTMCellImpl::from_float(
    const std::shared_ptr<torch::nn::LSTMCellImpl>& float_cell, QuantLayerOptions quant) {
  TORCH_CHECK(float_cell != nullptr, "QuantLSTMCell::from_float: got a null module");
  std::shared_ptr<QuantLSTMCellImpl> cell(
      new QuantLSTMCellImpl(float_cell->options, std::move(quant), NoInit{}));
  const auto source = float_cell->named_parameters(/*recurse=*/false);
  for (auto& item : cell->parameters_) {
    if (!item.value().defined()) continue;  // no bias
    const at::Tensor* p = source.find(item.key());
    TORCH_CHECK(p != nullptr && p->sizes() == item.value().sizes(),
                "QuantLSTMCell::from_float: the float cell has no parameter '", item.key(),
                "' of shape ", item.value().sizes());
    item.value() = *p;
  }
  cell->bind_parameters();
  cell->_input_quantizer->to(cell->weight_ih.device());
  cell->_weight_quantizer->to(cell->weight_ih.device());
  return cell;
}

// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~ QuantLSTM ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

QuantLSTMImpl::QuantLSTMImpl(torch::nn::LSTMOptions options_, QuantLayerOptions quant)
    : options(std::move(options_)),
      quant_options(resolve_descriptors<QuantLSTMImpl>(std::move(quant))) {
  reset();
}

QuantLSTMImpl::QuantLSTMImpl(torch::nn::LSTMOptions options_, QuantLayerOptions quant, NoInit)
    : options(std::move(options_)),
      quant_options(resolve_descriptors<QuantLSTMImpl>(std::move(quant))) {
  register_state(/*initialise=*/false);
}

void QuantLSTMImpl::reset() { register_state(/*initialise=*/true); }

void QuantLSTMImpl::register_state(bool initialise) {
  const int64_t input_size = options.input_size();
  const int64_t hidden_size = options.hidden_size();
  const int64_t num_layers = options.num_layers();
  const double dropout = options.dropout();
  TORCH_CHECK_VALUE(input_size > 0 && hidden_size > 0, kName,
                    ": input_size and hidden_size must be positive, got input_size=", input_size,
                    ", hidden_size=", hidden_size);
  TORCH_CHECK_VALUE(num_layers > 0, kName, ": num_layers must be positive, got ", num_layers);
  TORCH_CHECK_VALUE(dropout >= 0 && dropout <= 1, kName, ": dropout must be in [0, 1], got ",
                    dropout);
  TORCH_CHECK_VALUE(options.proj_size() == 0, kName, ": proj_size=", options.proj_size(),
                    " is not supported (pytorch_quantization does not support LSTM projections "
                    "either); use proj_size=0");
  if (dropout > 0 && num_layers == 1) {
    TORCH_WARN(kName,
               ": dropout adds dropout after all but the last recurrent layer, so a "
               "non-zero dropout expects num_layers greater than 1, but got dropout=",
               dropout, " and num_layers=", num_layers);
  }

  // torch::nn::LSTM's names and registration order, so that initialisation draws the same numbers.
  const int64_t gate_size = 4 * hidden_size;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    const int64_t layer_input_size = layer == 0 ? input_size : hidden_size * num_directions();
    for (int64_t direction = 0; direction < num_directions(); ++direction) {
      const std::string suffix = std::to_string(layer) + (direction == 1 ? "_reverse" : "");
      register_parameter("weight_ih_l" + suffix, at::empty({gate_size, layer_input_size}));
      register_parameter("weight_hh_l" + suffix, at::empty({gate_size, hidden_size}));
      if (options.bias()) {
        register_parameter("bias_ih_l" + suffix, at::empty({gate_size}));
        register_parameter("bias_hh_l" + suffix, at::empty({gate_size}));
      }
    }
  }
  if (initialise) reset_parameters();

  const int64_t num_quantizers = num_layers * num_directions();
  torch::nn::ModuleList input_quantizers;
  torch::nn::ModuleList weight_quantizers;
  for (int64_t i = 0; i < num_quantizers; ++i) {
    input_quantizers->push_back(TensorQuantizer(*quant_options.quant_desc_input()));
    weight_quantizers->push_back(TensorQuantizer(*quant_options.quant_desc_weight()));
  }
  _input_quantizers = register_module("_input_quantizers", input_quantizers);
  _weight_quantizers = register_module("_weight_quantizers", weight_quantizers);
}

void QuantLSTMImpl::reset_parameters() {
  const double stdv = 1.0 / std::sqrt(static_cast<double>(options.hidden_size()));
  for (at::Tensor& p : parameters(/*recurse=*/false)) torch::nn::init::uniform_(p, -stdv, stdv);
}

std::vector<at::Tensor> QuantLSTMImpl::flat_weights() const {
  return parameters(/*recurse=*/false);  // registered in the flat order
}

int64_t QuantLSTMImpl::quantizer_index(int64_t layer, int64_t direction, const char* where) const {
  TORCH_CHECK_INDEX(layer >= 0 && layer < options.num_layers(), where, ": layer ", layer,
                    " is out of range [0, ", options.num_layers(), ")");
  TORCH_CHECK_INDEX(direction >= 0 && direction < num_directions(), where, ": direction ",
                    direction, " is out of range [0, ", num_directions(), ")");
  return layer * num_directions() + direction;
}

TensorQuantizer QuantLSTMImpl::input_quantizer(int64_t layer, int64_t direction) const {
  return TensorQuantizer(_input_quantizers->ptr<TensorQuantizerImpl>(
      quantizer_index(layer, direction, "QuantLSTM::input_quantizer")));
}

TensorQuantizer QuantLSTMImpl::weight_quantizer(int64_t layer, int64_t direction) const {
  return TensorQuantizer(_weight_quantizers->ptr<TensorQuantizerImpl>(
      quantizer_index(layer, direction, "QuantLSTM::weight_quantizer")));
}

std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>> QuantLSTMImpl::forward(
    const at::Tensor& input, c10::optional<std::tuple<at::Tensor, at::Tensor>> hx) {
  constexpr const char* where = "QuantLSTM::forward";
  const bool batch_first = options.batch_first();
  TORCH_CHECK(input.defined(), where, ": input is an undefined tensor");
  TORCH_CHECK(input.dim() == 3, where, ": expected a 3-D input ",
              batch_first ? "[batch, seq_len, input_size]" : "[seq_len, batch, input_size]",
              ", got a ", input.dim(), "-D input of shape ", input.sizes());
  TORCH_CHECK(input.size(2) == options.input_size(), where, ": input.size(-1) is ", input.size(2),
              " but input_size is ", options.input_size(), " (input shape ", input.sizes(), ")");
  const int64_t num_layers = options.num_layers();
  const int64_t directions = num_directions();
  const int64_t hidden_size = options.hidden_size();
  const int64_t batch = input.size(batch_first ? 0 : 1);
  const std::vector<int64_t> state_shape{num_layers * directions, batch, hidden_size};
  at::Tensor h0, c0;
  if (hx) {
    std::tie(h0, c0) = *hx;
    const char* layout = "num_layers * num_directions, batch, hidden_size";
    check_state(h0, where, "h_0", state_shape, layout);
    check_state(c0, where, "c_0", state_shape, layout);
  } else {
    h0 = at::zeros(state_shape, input.options());
    c0 = h0;
  }

  const std::vector<at::Tensor> weights = flat_weights();
  const bool train = is_training();
  if (!quant_modules::is_active()) {
    auto [out, hn, cn] = at::lstm(input, {h0, c0}, weights, options.bias(), num_layers,
                                  options.dropout(), train, options.bidirectional(), batch_first);
    return {out, {hn, cn}};
  }

  const int64_t stride = options.bias() ? 4 : 2;
  at::Tensor layer_input = batch_first ? input.transpose(0, 1) : input;  // [seq, batch, feature]
  const int64_t seq_len = layer_input.size(0);
  std::vector<at::Tensor> h_n;
  std::vector<at::Tensor> c_n;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    std::vector<at::Tensor> direction_outputs;
    for (int64_t direction = 0; direction < directions; ++direction) {
      const int64_t index = layer * directions + direction;
      const at::Tensor* w = &weights[index * stride];
      const at::Tensor b_ih = options.bias() ? w[2] : at::Tensor();
      const at::Tensor b_hh = options.bias() ? w[3] : at::Tensor();
      TensorQuantizerImpl& input_quantizer = *_input_quantizers->ptr<TensorQuantizerImpl>(index);
      TensorQuantizerImpl& weight_quantizer = *_weight_quantizers->ptr<TensorQuantizerImpl>(index);
      // The fused weight is the same at every step: quantize it once, unless the quantizer
      // calibrates, in which case its calibrator sees it at every step, as upstream's does.
      const bool weight_per_step = weight_quantizer.calib_enabled();
      QuantizedWeights qw;
      if (!weight_per_step) qw = quantize_weights(weight_quantizer, w[0], w[1]);

      at::Tensor h = h0[index];
      at::Tensor c = c0[index];
      std::vector<at::Tensor> outputs(seq_len);
      for (int64_t step = 0; step < seq_len; ++step) {
        const int64_t t = direction == 1 ? seq_len - 1 - step : step;
        if (weight_per_step) qw = quantize_weights(weight_quantizer, w[0], w[1]);
        std::tie(h, c) = quant_lstm_step(layer_input[t], h, c, qw, b_ih, b_hh, input_quantizer);
        outputs[t] = h;
      }
      direction_outputs.push_back(seq_len > 0 ? at::stack(outputs, 0)
                                              : at::empty({0, batch, hidden_size}, h.options()));
      h_n.push_back(h);
      c_n.push_back(c);
    }
    layer_input = directions == 1 ? direction_outputs[0] : at::cat(direction_outputs, 2);
    if (options.dropout() > 0 && train && layer < num_layers - 1) {
      layer_input = at::dropout(layer_input, options.dropout(), /*train=*/true);
    }
  }
  at::Tensor output = batch_first ? layer_input.transpose(0, 1) : layer_input;
  return {output, {at::stack(h_n, 0), at::stack(c_n, 0)}};
}

void QuantLSTMImpl::pretty_print(std::ostream& stream) const {
  stream << kName << "(input_size=" << options.input_size()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", bias=" << bool_str(options.bias())
         << ", batch_first=" << bool_str(options.batch_first()) << ", dropout=" << options.dropout()
         << ", bidirectional=" << bool_str(options.bidirectional()) << ")";
}

std::shared_ptr<QuantLSTMImpl> QuantLSTMImpl::from_float(
    const std::shared_ptr<torch::nn::LSTMImpl>& float_lstm, QuantLayerOptions quant) {
  TORCH_CHECK(float_lstm != nullptr, "QuantLSTM::from_float: got a null module");
  std::shared_ptr<QuantLSTMImpl> lstm(
      new QuantLSTMImpl(float_lstm->options, std::move(quant), NoInit{}));
  const auto source = float_lstm->named_parameters(/*recurse=*/false);
  for (auto& item : lstm->parameters_) {
    const at::Tensor* p = source.find(item.key());
    TORCH_CHECK(p != nullptr && p->sizes() == item.value().sizes(),
                "QuantLSTM::from_float: the float LSTM has no parameter '", item.key(),
                "' of shape ", item.value().sizes());
    item.value() = *p;
  }
  const c10::Device device = lstm->parameters_.front().value().device();
  lstm->_input_quantizers->to(device);
  lstm->_weight_quantizers->to(device);
  return lstm;
}

}  // namespace nn
}  // namespace torchquant
