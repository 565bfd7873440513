#!/usr/bin/env python3
"""Writes the binary seeds of fuzz_ops and fuzz_histogram (corpus/<target>/) in the byte layout
that their LLVMFuzzerTestOneInput decodes; rerun it after changing that layout:

    python3 tests/fuzz/make_seeds.py tests/fuzz/corpus

The text seeds (fuzz_descriptor, fuzz_calib_cache) and the regression_* inputs that the fuzzers
found are kept as files. Bytes the targets read past the end of an input are 0.
"""
import os
import struct
import sys

NAN = float("nan")


def f32(*values):
    return b"".join(struct.pack("<f", v) for v in values)


def write(root, target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)


def ops(root, name, dtype, sizes, layout, axis, bits, uns, narrow, amax_in_dtype, amax, values,
        zero_d=False):
    """dtype 0-3: float32, float64, bfloat16, float16; layout 0-3: per tensor, per channel on
    `axis`, one amax per element, a shape that does not broadcast; a size of 0 is an empty dim."""
    data = bytes([dtype, len(sizes) - 1] + [0xFF if s == 0 else s - 1 for s in sizes] +
                 [layout, axis])
    if layout == 0:
        data += bytes([1 if zero_d else 0])  # 0-d amax rather than all ones
    data += bytes([bits, int(uns), int(narrow), int(amax_in_dtype)]) + f32(*amax) + f32(*values)
    write(root, "fuzz_ops", name, data)


def hist(root, name, skip_zeros, bins, per_channel, batches, method, stride, start_bin,
         percentile):
    """batches: (channels, kind, values); kind 0: values are bytes v meaning v / 4, kind 1: values
    are float32. Then the compute_amax options; method 0-2: entropy, mse, percentile."""
    data = bytes([int(skip_zeros), bins // 8 - 1, int(per_channel), len(batches) - 1])
    for channels, kind, values in batches:
        if per_channel:
            data += bytes([channels - 1])
        data += bytes([len(values), kind])
        data += f32(*values) if kind & 1 else bytes(values)
    data += bytes([method, stride - 1, start_bin, percentile])
    write(root, "fuzz_histogram", name, data)


def main(root):
    ops(root, "f32_per_tensor", 0, [2, 3], 0, 0, 8, 0, 1, 0, [1.0],
        [0.3, -1.7, 0.9, 2.0, -0.01, 0.5], zero_d=True)
    ops(root, "f64_per_channel", 1, [3, 2, 2], 1, 0, 4, 0, 0, 1, [0.5, 2.0, 0.1],
        [0.1, -0.2, 0.7, 1.9, -2.5, 0.25, 0.0, 3.0, 0.05, -0.05, 0.2, -0.3])
    ops(root, "bf16_unsigned", 2, [4], 0, 0, 8, 1, 0, 0, [3.0], [0.0, 1.5, 2.9, 4.0])
    ops(root, "f16_per_channel_axis1", 3, [2, 4], 1, 1, 6, 0, 1, 1, [1.0, 0.5, 4.0, 0.25],
        [0.1, -0.6, 3.0, 0.2, -1.2, 0.4, -5.0, 0.125])
    ops(root, "general_layout", 0, [3, 3], 2, 0, 8, 0, 1, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9],
        [0.5, -3, 2.9, 4.1, -5.5, 1, 0, 8.2, -9.9])
    ops(root, "bad_bits", 0, [2], 0, 0, 17, 0, 1, 0, [1.0], [0.5, -0.5])
    ops(root, "nan_amax", 0, [2], 0, 0, 8, 0, 1, 0, [NAN], [0.5, -0.5])
    ops(root, "bad_broadcast", 0, [2, 3], 3, 1, 8, 0, 1, 0, [1.0] * 10, [0.1] * 6)
    ops(root, "empty_dim", 0, [0, 3], 0, 0, 8, 0, 1, 0, [1.0], [])
    ops(root, "unsigned_negative", 0, [3], 0, 0, 8, 1, 0, 0, [1.0], [0.5, -0.25, 0.75])

    hist(root, "small_then_grow", 0, 128, 0,
         [(1, 0, [1, 2, 3, 4, 8, 12, 16, 20]), (1, 0, [5, 100, 200, 255, 0])], 0, 1, 0, 99)
    hist(root, "zeros_first", 0, 64, 0, [(1, 0, [0, 0, 0, 0]), (1, 0, [1, 2, 3, 4])], 1, 2, 10,
         50)
    hist(root, "skip_zeros_nan", 1, 32, 0, [(1, 1, [0.0, 1.0, NAN, 2.0]), (1, 0, [0, 7, 7, 7])],
         2, 1, 128, 100)
    hist(root, "per_channel_change", 0, 64, 1,
         [(2, 0, [1, 2, 3, 4, 5, 6, 7, 8]), (3, 0, [1, 2, 3, 4, 5, 6]),
          (2, 1, [0.5, 2.0, 1e3, 0.0])], 1, 1, 0, 99)
    # A width of 1.6e-32: 1e-24 would need 6e7 bins (refused), 1e-26 grows to 6e5 bins.
    hist(root, "regression_grow_far", 0, 64, 0,
         [(1, 1, [1e-30, 0.0]), (1, 1, [1e-24]), (1, 1, [1e-26, 5e-27])], 2, 1, 128, 99)
    # Found by fuzz_histogram: a channel up to 3e38 makes the top bin centres inf; mse's search for
    # such a candidate's clamped tail read past its arrays (tests/test_amax_search.cpp).
    hist(root, "regression_mse_centres_past_float_max", 0, 64, 1,
         [(3, 0, []), (3, 1, [2.5e-38, 2.9e-14, -3.0e38])], 1, 4, 54, 53)
    # Upstream's float32 arange for this growth (width 3/16) ends below 1146664.375, and its histc
    # would drop that value; every value must be counted (tests/test_calibrators.cpp).
    hist(root, "regression_arange_short", 0, 16, 0, [(1, 0, [12]), (1, 1, [1146664.375, 0.5])],
         2, 1, 0, 99)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
