#pragma once
// Python- and NumPy-compatible text for the strings torchquant mirrors from pytorch_quantization
// (QuantDescriptor.__str__, TensorQuantizer.extra_repr). Internal header.

#include <cstdint>
#include <string>
#include <vector>

namespace torchquant {
namespace detail {

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents in [-4, 16),
/// scientific otherwise; `1.0`, `0.9`, `1e-05`, `1e+16`, `nan`, `inf`.
std::string py_float_repr(double value);

/// Python's `"{:.Nf}".format(value)` (also `nan`, `inf`, `-inf`).
std::string py_fixed(double value, int digits);

/// Python's repr of a tuple of ints: `(0,)`, `(1, 2)`, `()`.
std::string py_tuple_repr(const std::vector<int64_t>& values);

/// NumPy's `str()` of a float32 array with the default print options (precision 8, maxprec,
/// line width 75): `[0.5  1.25]`, `[[1.  2. ]\n [3.  4.5]]`, `[1.e-05 1.e+00]`. Arrays of more
/// than 1000 elements are printed in full (NumPy would summarise them with `...`).
std::string numpy_array_str(const std::vector<float>& values, const std::vector<int64_t>& shape);

}  // namespace detail
}  // namespace torchquant
