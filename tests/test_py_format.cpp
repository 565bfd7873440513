// The Python / NumPy text helpers behind QuantDescriptor and TensorQuantizer printing. Expected
// strings were produced by CPython's repr() and NumPy 2's str() (see the comments).

#include <gtest/gtest.h>

#include "util/py_format.h"

namespace torchquant {
namespace detail {
namespace {

TEST(PyFormat, FloatReprMatchesPython) {
  EXPECT_EQ(py_float_repr(1.0), "1.0");
  EXPECT_EQ(py_float_repr(0.9), "0.9");
  EXPECT_EQ(py_float_repr(static_cast<double>(1.1f)), "1.100000023841858");
  EXPECT_EQ(py_float_repr(static_cast<double>(0.8f)), "0.800000011920929");
  EXPECT_EQ(py_float_repr(23.4261474609375), "23.4261474609375");
  EXPECT_EQ(py_float_repr(1e-5), "1e-05");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(py_float_repr(-2.5), "-2.5");
  EXPECT_EQ(py_float_repr(0.0), "0.0");
  EXPECT_EQ(py_float_repr(std::nan("")), "nan");
  EXPECT_EQ(py_float_repr(-HUGE_VAL), "-inf");
  EXPECT_EQ(py_fixed(7.35954, 4), "7.3595");
  EXPECT_EQ(py_tuple_repr({0}), "(0,)");
  EXPECT_EQ(py_tuple_repr({1, 2}), "(1, 2)");
}

TEST(PyFormat, ArrayStrMatchesNumpy) {
  // str(np.array([[[[0.5]], [[0.75]], [[1.]], [[1.25]], [[1.5]]]], dtype=np.float32))
  EXPECT_EQ(numpy_array_str({0.5f, 0.75f, 1.f, 1.25f, 1.5f}, {1, 5, 1, 1}),
            "[[[[0.5 ]]\n\n  [[0.75]]\n\n  [[1.  ]]\n\n  [[1.25]]\n\n  [[1.5 ]]]]");
  EXPECT_EQ(numpy_array_str({1e-5f, 1.f, 3.25f}, {3}), "[1.00e-05 1.00e+00 3.25e+00]");
  EXPECT_EQ(numpy_array_str({-1.5f, 2.f, 300.125f}, {3}), "[ -1.5     2.    300.125]");
  EXPECT_EQ(numpy_array_str({1.f, 2.f, 3.f, 4.5f}, {2, 2}), "[[1.  2. ]\n [3.  4.5]]");
  EXPECT_EQ(numpy_array_str({1e9f, 2.f}, {2}), "[1.e+09 2.e+00]");
  EXPECT_EQ(numpy_array_str({1.123456789f, 2.f}, {2}), "[1.1234568 2.       ]");
  EXPECT_EQ(numpy_array_str({}, {0}), "[]");
  // str(np.arange(40, dtype=np.float32) * 0.37): wraps at 75 columns.
  std::vector<float> v;
  for (int i = 0; i < 40; ++i) v.push_back(static_cast<float>(i) * 0.37f);
  EXPECT_EQ(numpy_array_str(v, {40}),
            "[ 0.         0.37       0.74       1.11       1.48       1.85\n"
            "  2.22       2.5900002  2.96       3.33       3.7        4.07\n"
            "  4.44       4.81       5.1800003  5.55       5.92       6.29\n"
            "  6.66       7.03       7.4        7.77       8.14       8.51\n"
            "  8.88       9.25       9.62       9.99      10.360001  10.7300005\n"
            " 11.1       11.47      11.84      12.21      12.58      12.95\n"
            " 13.32      13.690001  14.06      14.43     ]");
}

}  // namespace
}  // namespace detail
}  // namespace torchquant
