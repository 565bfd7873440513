#include "torchquant/calib/calibrator.h"

#include <c10/util/Exception.h>

#include <algorithm>

#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"
#include "util/py_format.h"

namespace torchquant {
namespace calib {

Calibrator::Calibrator(NumBits num_bits, c10::optional<std::vector<int64_t>> axis, bool is_unsigned)
    : num_bits_(num_bits), axis_(std::move(axis)), unsigned_(is_unsigned) {}

std::string Calibrator::str() const { return name() + "(" + common_fields() + ")"; }

std::string Calibrator::common_fields() const {
  std::string s = "num_bits=" + num_bits_.str() + ", axis=";
  s += axis_ ? detail::py_tuple_repr(*axis_) : "None";
  s += std::string(", unsigned=") + (unsigned_ ? "True" : "False");
  return s;
}

void Calibrator::check_input(const at::Tensor& x, const char* where) {
  TORCH_CHECK_TYPE(x.defined() && x.is_floating_point(), where,
                   ": expected a floating-point tensor, got ",
                   x.defined() ? c10::toString(x.scalar_type()) : "an undefined tensor");
}

std::vector<int64_t> Calibrator::normalized_axis(const at::Tensor& x, const char* where) const {
  std::vector<int64_t> axes;
  if (!axis_) return axes;
  const int64_t rank = x.dim();
  for (int64_t a : *axis_) {
    TORCH_CHECK_INDEX(a >= -rank && a < rank, where, ": axis ", a, " is out of range for a ", rank,
                      "-d input of shape ", x.sizes(), " (expected -", rank, " <= axis < ", rank,
                      ")");
    axes.push_back(a < 0 ? a + rank : a);
  }
  std::sort(axes.begin(), axes.end());
  TORCH_CHECK_VALUE(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), where, ": axis ",
                    detail::py_tuple_repr(*axis_), " names the same dim twice for a ", rank,
                    "-d input");
  return axes;
}

std::vector<int64_t> Calibrator::reduce_dims(const at::Tensor& x, const char* where) const {
  const std::vector<int64_t> keep = normalized_axis(x, where);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!std::binary_search(keep.begin(), keep.end(), d)) dims.push_back(d);
  }
  return dims;
}

std::unique_ptr<Calibrator> make_calibrator(const QuantDescriptor& desc) {
  if (desc.calib_method() == "histogram") {
    return std::make_unique<HistogramCalibrator>(desc.num_bits(), desc.axis(), desc.is_unsigned(),
                                                 desc.num_bins(), desc.skip_zeros());
  }
  return std::make_unique<MaxCalibrator>(desc.num_bits(), desc.axis(), desc.is_unsigned());
}

}  // namespace calib
}  // namespace torchquant
