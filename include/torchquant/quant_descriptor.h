#pragma once
/// \file
/// QuantDescriptor: how a tensor is quantized (mirrors `pytorch_quantization.QuantDescriptor`),
/// and the predefined descriptors.
///
/// Example:
/// \code
///   using torchquant::QuantDescriptor;
///   auto weight_desc = QuantDescriptor().num_bits(8).axis(0);          // per output channel
///   auto input_desc = QuantDescriptor().calib_method("histogram").is_unsigned(true);
///   std::cout << weight_desc;  // QuantDescriptor(8bit fake axis=0)
///   QuantDescriptor back = QuantDescriptor::from_yaml(weight_desc.to_yaml());
/// \endcode

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace torchquant {

/// Number of bits of a quantizer: an integer (0 to 16 for integer quantization) or the E4M3
/// floating-point format, written `(4, 3)` as in pytorch_quantization.
///
/// \code
///   torchquant::NumBits int8 = 8;
///   torchquant::NumBits fp8 = torchquant::NumBits::e4m3();  // or NumBits(4, 3)
/// \endcode
class NumBits {
 public:
  /// Integer quantization with `bits` bits; an error unless 0 <= bits <= 16.
  NumBits(int64_t bits = 8);  // NOLINT(google-explicit-constructor): mirrors `num_bits=8`
  /// A floating-point format (exponent, mantissa) bits; only (4, 3) (E4M3) is supported.
  NumBits(int64_t exponent_bits, int64_t mantissa_bits);
  /// The E4M3 format, (4, 3).
  static NumBits e4m3() { return NumBits(4, 3); }

  bool is_e4m3() const { return e4m3_; }
  /// The integer bit count; an error for E4M3.
  int64_t bits() const;
  /// `8`, or `(4, 3)` for E4M3, as Python prints it.
  std::string str() const;

  bool operator==(const NumBits& other) const {
    return e4m3_ == other.e4m3_ && bits_ == other.bits_;
  }
  bool operator!=(const NumBits& other) const { return !(*this == other); }

 private:
  int64_t bits_ = 8;
  bool e4m3_ = false;
};

/// Describes how a tensor is quantized. Fluent setters in the LibTorch options style; every setter
/// validates at once, so an invalid combination (learn_amax with an axis, an unknown calib_method,
/// num_bits (5, 2), ...) is an error where it is written.
///
/// Fields and defaults are pytorch_quantization's: num_bits 8, no name, fake_quant true, no axis
/// (per tensor), no amax, learn_amax false, no scale_amax, calib_method "max", unsigned false
/// (`is_unsigned` here: `unsigned` is a C++ keyword), narrow_range false. New: num_bins and
/// skip_zeros of the histogram calibrator (calib_method "histogram").
///
/// \code
///   auto desc = torchquant::QuantDescriptor().num_bits(4).is_unsigned(true).amax(2.5);
///   std::string json = desc.to_json();
///   assert(torchquant::QuantDescriptor::from_json(json) == desc);
/// \endcode
class QuantDescriptor {
 public:
  QuantDescriptor() = default;

  // -- setters (fluent) -------------------------------------------------------------------------
  QuantDescriptor& num_bits(NumBits value);
  QuantDescriptor& name(c10::optional<std::string> value);
  QuantDescriptor& fake_quant(bool value);
  /// One axis that keeps its own amax (printed as Python prints an int: `axis=0`).
  QuantDescriptor& axis(int64_t value);
  /// Axes that keep their own amax (printed as a tuple: `axis=(0,)`); empty means none.
  QuantDescriptor& axis(std::vector<int64_t> value);
  /// Back to per-tensor (no axis).
  QuantDescriptor& clear_axis();
  /// A fixed per-tensor amax (stored in float32, as upstream).
  QuantDescriptor& amax(double value);
  /// A fixed amax given as a flat list (a 1-d array, as upstream builds from a Python list).
  QuantDescriptor& amax(const std::vector<double>& values);
  /// A fixed amax of any shape (copied to float32 on the CPU); e.g. `[1, C, 1, 1]` per channel.
  QuantDescriptor& amax(const at::Tensor& value);
  QuantDescriptor& clear_amax();
  QuantDescriptor& learn_amax(bool value);
  QuantDescriptor& scale_amax(c10::optional<double> value);
  /// "max" or "histogram".
  QuantDescriptor& calib_method(std::string value);
  /// Bins of the histogram calibrator's first batch (default 2048, must be > 0).
  QuantDescriptor& num_bins(int64_t value);
  /// Whether the histogram calibrator ignores exact zeros (default false).
  QuantDescriptor& skip_zeros(bool value);
  QuantDescriptor& is_unsigned(bool value);
  QuantDescriptor& narrow_range(bool value);

  // -- getters ----------------------------------------------------------------------------------
  const NumBits& num_bits() const { return num_bits_; }
  const c10::optional<std::string>& name() const { return name_; }
  bool fake_quant() const { return fake_quant_; }
  /// The axes as given (unnormalised; negative axes are normalised against the input's rank).
  const c10::optional<std::vector<int64_t>>& axis() const { return axis_; }
  /// True when the axis was given as a single int rather than a list.
  bool axis_is_int() const { return axis_is_int_; }
  bool has_amax() const { return has_amax_; }
  /// The fixed amax as a float32 CPU tensor of its given shape (0-d for a scalar); undefined
  /// when there is none.
  at::Tensor amax() const;
  const std::vector<float>& amax_values() const { return amax_values_; }
  const std::vector<int64_t>& amax_shape() const { return amax_shape_; }
  bool learn_amax() const { return learn_amax_; }
  const c10::optional<double>& scale_amax() const { return scale_amax_; }
  const std::string& calib_method() const { return calib_method_; }
  int64_t num_bins() const { return num_bins_; }
  bool skip_zeros() const { return skip_zeros_; }
  bool is_unsigned() const { return unsigned_; }
  bool narrow_range() const { return narrow_range_; }

  /// Upstream's `__str__`, e.g. `QuantDescriptor(8bit fake axis=(0,))`,
  /// `QuantDescriptor(unsigned 8bit fake axis= per-tensor amax=1.0 full_range)`.
  std::string str() const;

  /// Equal when every field is equal (an int axis equals the one-element list of it).
  bool operator==(const QuantDescriptor& other) const;
  bool operator!=(const QuantDescriptor& other) const { return !(*this == other); }

  /// JSON object with pytorch_quantization's `dict()` keys (num_bits, name, and every field that
  /// differs from its default, including narrow_range and calib_method, which upstream drops).
  std::string to_json() const;
  /// Reads `to_json()` output, or any object with those keys; unknown keys, wrong types and
  /// invalid values are errors that name the key.
  static QuantDescriptor from_json(const std::string& text);
  /// YAML in the layout of upstream's `to_yaml()` (sorted keys, block style) with the same keys
  /// as `to_json()`.
  std::string to_yaml() const;
  /// Reads `to_yaml()` output and the YAML that pytorch_quantization's `to_yaml()` writes
  /// (`!!python/tuple` tags accepted).
  static QuantDescriptor from_yaml(const std::string& text);

 private:
  NumBits num_bits_;
  c10::optional<std::string> name_;
  bool fake_quant_ = true;
  c10::optional<std::vector<int64_t>> axis_;
  bool axis_is_int_ = false;
  bool has_amax_ = false;
  std::vector<float> amax_values_;
  std::vector<int64_t> amax_shape_;
  bool learn_amax_ = false;
  c10::optional<double> scale_amax_;
  std::string calib_method_ = "max";
  int64_t num_bins_ = 2048;
  bool skip_zeros_ = false;
  bool unsigned_ = false;
  bool narrow_range_ = false;
};

std::ostream& operator<<(std::ostream& stream, const QuantDescriptor& desc);

// -- Predefined descriptors (pytorch_quantization's names) ---------------------------------------
// Functions rather than globals, so that they are safe to use from other static initialisers.

/// 8 bit, per tensor.
QuantDescriptor QUANT_DESC_8BIT_PER_TENSOR();
/// 8 bit unsigned, per tensor.
QuantDescriptor QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR();
/// 8 bit per output channel (axis 0 of [out, in, k...]).
QuantDescriptor QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL();
QuantDescriptor QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL();
QuantDescriptor QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL();
/// 8 bit per row (axis 0 of [out, in]).
QuantDescriptor QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW();
/// ConvTranspose weights ([in, out/groups, k...]) per channel of axis 0, what TensorRT's
/// deconvolution expects (NVIDIA/TensorRT#2380, #1694) and TensorRT Model Optimizer uses.
/// pytorch_quantization 2.2.1 uses axis 1: see the `_AXIS1` variants and docs/design.md.
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL();
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL();
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL();
/// pytorch_quantization 2.2.1's ConvTranspose weight descriptors (axis 1), for checkpoints made
/// with it.
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL_AXIS1();
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL_AXIS1();
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL_AXIS1();

}  // namespace torchquant
