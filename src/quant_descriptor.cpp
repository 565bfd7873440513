#include "torchquant/quant_descriptor.h"

#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>

#include <ostream>
#include <utility>

#include "util/py_format.h"

namespace torchquant {

// -- NumBits -------------------------------------------------------------------------------------

NumBits::NumBits(int64_t bits) : bits_(bits) {
  TORCH_CHECK_VALUE(bits >= 0 && bits <= 16, "QuantDescriptor: num_bits must be an integer in ",
                    "[0, 16] or (4, 3) for E4M3, got ", bits);
}

NumBits::NumBits(int64_t exponent_bits, int64_t mantissa_bits) : bits_(8), e4m3_(true) {
  TORCH_CHECK_VALUE(exponent_bits == 4 && mantissa_bits == 3,
                    "QuantDescriptor: the only floating-point num_bits is (4, 3) (E4M3), got (",
                    exponent_bits, ", ", mantissa_bits, ")");
}

int64_t NumBits::bits() const {
  TORCH_CHECK(!e4m3_, "NumBits::bits: num_bits is (4, 3) (E4M3), not an integer bit count");
  return bits_;
}

std::string NumBits::str() const { return e4m3_ ? "(4, 3)" : std::to_string(bits_); }

// -- setters -------------------------------------------------------------------------------------

QuantDescriptor& QuantDescriptor::num_bits(NumBits value) {
  num_bits_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::name(c10::optional<std::string> value) {
  name_ = std::move(value);
  return *this;
}

QuantDescriptor& QuantDescriptor::fake_quant(bool value) {
  fake_quant_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::axis(int64_t value) {
  axis(std::vector<int64_t>{value});
  axis_is_int_ = true;
  return *this;
}

QuantDescriptor& QuantDescriptor::axis(std::vector<int64_t> value) {
  TORCH_CHECK_VALUE(!learn_amax_,
                    "QuantDescriptor::axis: axis must be None when learn_amax is true (amax "
                    "learning is per tensor), got axis=",
                    detail::py_tuple_repr(value));
  for (size_t i = 0; i < value.size(); ++i) {
    for (size_t j = i + 1; j < value.size(); ++j) {
      TORCH_CHECK_VALUE(value[i] != value[j], "QuantDescriptor::axis: axis ", value[i],
                        " is repeated in ", detail::py_tuple_repr(value));
    }
  }
  axis_ = std::move(value);
  axis_is_int_ = false;
  return *this;
}

QuantDescriptor& QuantDescriptor::clear_axis() {
  axis_.reset();
  axis_is_int_ = false;
  return *this;
}

QuantDescriptor& QuantDescriptor::amax(double value) {
  return amax(at::scalar_tensor(value, at::kFloat));
}

QuantDescriptor& QuantDescriptor::amax(const std::vector<double>& values) {
  std::vector<float> as_float(values.begin(), values.end());
  return amax(at::tensor(as_float));
}

QuantDescriptor& QuantDescriptor::amax(const at::Tensor& value) {
  TORCH_CHECK_VALUE(value.defined(), "QuantDescriptor::amax: got an undefined tensor");
  TORCH_CHECK_TYPE(value.is_floating_point() || !value.is_complex(),
                   "QuantDescriptor::amax: expected a real tensor, got ", value.scalar_type());
  at::Tensor cpu = value.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* data = cpu.data_ptr<float>();
  amax_values_.assign(data, data + cpu.numel());
  amax_shape_ = cpu.sizes().vec();
  has_amax_ = true;
  return *this;
}

QuantDescriptor& QuantDescriptor::clear_amax() {
  has_amax_ = false;
  amax_values_.clear();
  amax_shape_.clear();
  return *this;
}

QuantDescriptor& QuantDescriptor::learn_amax(bool value) {
  TORCH_CHECK_VALUE(!value || !axis_.has_value(),
                    "QuantDescriptor::learn_amax: learn_amax requires axis None (amax learning is "
                    "per tensor), got axis=",
                    detail::py_tuple_repr(*axis_));
  learn_amax_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::scale_amax(c10::optional<double> value) {
  scale_amax_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::calib_method(std::string value) {
  TORCH_CHECK_VALUE(value == "max" || value == "histogram",
                    "QuantDescriptor::calib_method: expected \"max\" or \"histogram\", got \"",
                    value, "\"");
  calib_method_ = std::move(value);
  return *this;
}

QuantDescriptor& QuantDescriptor::num_bins(int64_t value) {
  TORCH_CHECK_VALUE(value > 0, "QuantDescriptor::num_bins: expected a positive bin count, got ",
                    value);
  num_bins_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::skip_zeros(bool value) {
  skip_zeros_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::is_unsigned(bool value) {
  unsigned_ = value;
  return *this;
}

QuantDescriptor& QuantDescriptor::narrow_range(bool value) {
  narrow_range_ = value;
  return *this;
}

// -- getters, printing, equality -----------------------------------------------------------------

at::Tensor QuantDescriptor::amax() const {
  if (!has_amax_) return at::Tensor();
  return at::tensor(amax_values_).reshape(amax_shape_);
}

std::string QuantDescriptor::str() const {
  std::string s = name_ ? *name_ + ": " : "QuantDescriptor";
  s += "(";
  s += unsigned_ ? "unsigned " : "";
  s += num_bits_.str() + "bit";
  s += fake_quant_ ? " fake" : " real";
  // Upstream formats `axis if axis is not None else " per-tensor"` after "axis=".
  s += " axis=";
  if (!axis_) {
    s += " per-tensor";
  } else if (axis_is_int_) {
    s += std::to_string(axis_->front());
  } else {
    s += detail::py_tuple_repr(*axis_);
  }
  if (has_amax_) {
    // A 0-d float32 array formats as the Python float of its value; others as NumPy's str().
    s += " amax=";
    s += amax_shape_.empty() ? detail::py_float_repr(amax_values_.front())
                             : detail::numpy_array_str(amax_values_, amax_shape_);
    s += " full_range";  // upstream prints this whenever amax is set
  }
  if (learn_amax_) s += " learn_amax";
  if (scale_amax_ && *scale_amax_ != 0.0) s += " scale_amax=" + detail::py_float_repr(*scale_amax_);
  return s + ")";
}

bool QuantDescriptor::operator==(const QuantDescriptor& other) const {
  return num_bits_ == other.num_bits_ && name_ == other.name_ && fake_quant_ == other.fake_quant_ &&
         axis_ == other.axis_ && has_amax_ == other.has_amax_ &&
         amax_values_ == other.amax_values_ && amax_shape_ == other.amax_shape_ &&
         learn_amax_ == other.learn_amax_ && scale_amax_ == other.scale_amax_ &&
         calib_method_ == other.calib_method_ && num_bins_ == other.num_bins_ &&
         skip_zeros_ == other.skip_zeros_ && unsigned_ == other.unsigned_ &&
         narrow_range_ == other.narrow_range_;
}

std::ostream& operator<<(std::ostream& stream, const QuantDescriptor& desc) {
  return stream << desc.str();
}

// -- predefined ----------------------------------------------------------------------------------

QuantDescriptor QUANT_DESC_8BIT_PER_TENSOR() { return QuantDescriptor().num_bits(8); }
QuantDescriptor QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR() {
  return QuantDescriptor().num_bits(8).is_unsigned(true);
}
namespace {
QuantDescriptor per_channel_8bit(int64_t axis) { return QuantDescriptor().num_bits(8).axis(axis); }
}  // namespace

QuantDescriptor QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL() { return per_channel_8bit(0); }
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL_AXIS1() {
  return per_channel_8bit(1);
}
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL_AXIS1() {
  return per_channel_8bit(1);
}
QuantDescriptor QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL_AXIS1() {
  return per_channel_8bit(1);
}

}  // namespace torchquant
