#include "util/py_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <system_error>

namespace torchquant {
namespace detail {
namespace {

// Shortest round-trip digits of `value` split into a digit string and a decimal exponent:
// value = d.ddd * 10^exponent.
template <typename T>
void shortest_digits(T value, std::string* digits, int* exponent) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string_view text(buf, static_cast<size_t>(res.ptr - buf));
  size_t e = text.find('e');
  digits->clear();
  for (char c : text.substr(0, e)) {
    if (c >= '0' && c <= '9') digits->push_back(c);
  }
  *exponent = std::atoi(std::string(text.substr(e + 1)).c_str());
}

std::string special_float(double value) {
  if (std::isnan(value)) return "nan";
  return value > 0 ? "inf" : "-inf";
}

std::string exponent_text(int exponent, size_t min_digits) {
  std::string digits = std::to_string(std::abs(exponent));
  if (digits.size() < min_digits) digits.insert(0, min_digits - digits.size(), '0');
  return std::string(exponent < 0 ? "-" : "+") + digits;
}

// NumPy's element formatter for one array: fixed (positional) or scientific, fractional digits
// padded to the widest element.
struct NumpyFloatFormat {
  bool scientific = false;
  size_t pad_left = 0;
  size_t pad_right = 0;
  size_t exp_digits = 2;

  static constexpr int kPrecision = 8;

  // Positional digits of a float32: integer part (with sign) and fraction (no trailing zeros).
  static void positional(float v, std::string* int_part, std::string* frac) {
    char buf[128];
    auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
    std::string text(buf, res.ptr);
    size_t dot = text.find('.');
    if (dot != std::string::npos && text.size() - dot - 1 > kPrecision) {
      res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, kPrecision);
      text.assign(buf, res.ptr);
      while (text.back() == '0') text.pop_back();
      dot = text.find('.');
    }
    *int_part = text.substr(0, dot);
    *frac = dot == std::string::npos ? "" : text.substr(dot + 1);
  }

  // Scientific digits of a float32: sign + leading digit, fraction, exponent.
  static void exponential(float v, std::string* lead, std::string* frac, int* exponent) {
    std::string digits;
    shortest_digits(std::fabs(v), &digits, exponent);
    if (digits.size() > kPrecision + 1) {
      char buf[64];
      auto res = std::to_chars(buf, buf + sizeof(buf), std::fabs(v), std::chars_format::scientific,
                               kPrecision);
      std::string text(buf, res.ptr);
      size_t e = text.find('e');
      *exponent = std::atoi(text.c_str() + e + 1);
      digits.clear();
      for (char c : text.substr(0, e)) {
        if (c != '.') digits.push_back(c);
      }
      while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    }
    *lead = std::string(std::signbit(v) ? "-" : "") + digits.substr(0, 1);
    *frac = digits.substr(1);
  }

  explicit NumpyFloatFormat(const std::vector<float>& values) {
    float max_abs = 0.f;
    float min_abs = 0.f;
    bool any_nonzero = false;
    for (float v : values) {
      if (!std::isfinite(v) || v == 0.f) continue;
      float a = std::fabs(v);
      max_abs = any_nonzero ? std::max(max_abs, a) : a;
      min_abs = any_nonzero ? std::min(min_abs, a) : a;
      any_nonzero = true;
    }
    scientific =
        any_nonzero && (max_abs >= 1e8f || min_abs < 0.0001f || max_abs / min_abs > 1000.f);
    for (float v : values) {
      if (!std::isfinite(v)) {
        pad_left = std::max(pad_left, special_float(v).size());
        continue;
      }
      std::string lead, frac;
      if (scientific) {
        int exponent = 0;
        exponential(v, &lead, &frac, &exponent);
        exp_digits = std::max(exp_digits, std::to_string(std::abs(exponent)).size());
      } else {
        positional(v, &lead, &frac);
      }
      pad_left = std::max(pad_left, lead.size());
      pad_right = std::max(pad_right, frac.size());
    }
  }

  std::string operator()(float v) const {
    std::string lead, frac, tail;
    if (!std::isfinite(v)) {
      std::string s = special_float(v);
      return std::string(pad_left + pad_right + 1 - std::min(s.size(), pad_left + pad_right + 1),
                         ' ') +
             s;
    }
    if (scientific) {
      int exponent = 0;
      exponential(v, &lead, &frac, &exponent);
      frac.append(pad_right - frac.size(), '0');
      tail = "e" + exponent_text(exponent, exp_digits);
    } else {
      positional(v, &lead, &frac);
      tail.assign(pad_right - frac.size(), ' ');
    }
    return std::string(pad_left - lead.size(), ' ') + lead + "." + frac + tail;
  }
};

}  // namespace

std::string py_float_repr(double value) {
  if (!std::isfinite(value)) return special_float(value);
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  std::string digits;
  int exponent = 0;
  shortest_digits(std::fabs(value), &digits, &exponent);
  std::string sign = std::signbit(value) ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    return sign + mantissa + "e" + exponent_text(exponent, 2);
  }
  std::string out;
  if (exponent < 0) {
    out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  } else {
    size_t int_len = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return sign + out;
}

std::string py_fixed(double value, int digits) {
  if (!std::isfinite(value)) return special_float(value);
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, value);
  return buf;
}

std::string py_tuple_repr(const std::vector<int64_t>& values) {
  std::string s = "(";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(values[i]);
  }
  return s + (values.size() == 1 ? ",)" : ")");
}

std::string numpy_array_str(const std::vector<float>& values, const std::vector<int64_t>& shape) {
  const NumpyFloatFormat format(values);
  if (shape.empty()) return values.empty() ? "[]" : format(values[0]);
  if (values.empty()) return "[]";
  constexpr size_t kLineWidth = 75;
  std::vector<size_t> strides(shape.size(), 1);
  for (size_t d = shape.size() - 1; d > 0; --d) {
    strides[d - 1] = strides[d] * static_cast<size_t>(shape[d]);
  }
  // Mirrors NumPy's recursive layout: one more space of hanging indent and one less column per
  // nesting level, blank lines between blocks of rank >= 2, greedy wrapping of the last axis.
  std::function<std::string(size_t, size_t, const std::string&, size_t)> render =
      [&](size_t dim, size_t offset, const std::string& indent, size_t width) -> std::string {
    const size_t n = static_cast<size_t>(shape[dim]);
    std::string s;
    if (dim + 1 == shape.size()) {
      const size_t elem_width = width - 1;
      std::string line = indent;
      for (size_t i = 0; i < n; ++i) {
        std::string word = format(values[offset + i]);
        if (line.size() + word.size() > elem_width && line.size() > indent.size()) {
          while (!line.empty() && line.back() == ' ') line.pop_back();
          s += line + "\n";
          line = indent;
        }
        line += word;
        if (i + 1 < n) line += " ";
      }
      s += line;
    } else {
      const std::string sep(shape.size() - dim - 1, '\n');
      for (size_t i = 0; i < n; ++i) {
        s += indent + render(dim + 1, offset + i * strides[dim], indent + " ", width - 1);
        if (i + 1 < n) s += sep;
      }
    }
    return "[" + s.substr(indent.size()) + "]";
  };
  return render(0, 0, " ", kLineWidth);
}

}  // namespace detail
}  // namespace torchquant
