"""ctest: runs the Fashion-MNIST example in quick mode and checks what it wrote.

usage: check_quick.py <fashion_mnist binary> <output dir>

Checks: the run completes; results.json holds float, every PTQ variant and QAT; the float model
learned; the best int8 PTQ and QAT stay within a loose bound of float on this slice; the
checkpoint loads in Python with pytorch_quantization's names; the TensorRT cache parses and
agrees with amax.json; both PNGs are PNG files.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import torch

EXPECTED = ["float", "int8 max", "int8 entropy", "int8 mse", "int8 pct99.9", "int8 pct99.99",
            "int8 pct99.999"]
# Quick mode: 6000 training images, one epoch, 1000 test images (1 image = 0.1 point).
MAX_PTQ_DROP = 2.0
MAX_QAT_DROP = 2.0


def main():
    binary, out = sys.argv[1], sys.argv[2]
    shutil.rmtree(out, ignore_errors=True)
    # One thread: ctest runs other tests (compilers) beside this one on two cores, and OpenMP's
    # spinning workers then wait for each other (85 s instead of 4 s in CI).
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([binary, "--quick", "--output-dir", out, "--threads", "1"], env=env, check=True)

    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    top1 = {v["variant"]: v["top1"] for v in results["variants"]}
    missing = [v for v in EXPECTED if v not in top1]
    assert not missing, f"variants missing from results.json: {missing}"
    qat = [v for v in top1 if v.startswith("qat (")]
    assert len(qat) == 1, f"expected one QAT variant, got {qat}"
    best_ptq = max(top1[v] for v in EXPECTED[1:])
    assert top1["float"] > 50, f"the float model did not learn: {top1['float']}%"
    assert best_ptq >= top1["float"] - MAX_PTQ_DROP, (best_ptq, top1["float"])
    assert top1[qat[0]] >= top1["float"] - MAX_QAT_DROP, (top1[qat[0]], top1["float"])

    state = torch.load(os.path.join(out, "qat_int8.pt"))
    assert isinstance(state, dict)
    for name in ("stem.weight", "stem._input_quantizer._amax", "stem._weight_quantizer._amax",
                 "layer1.add._input0_quantizer._amax", "fc._input_quantizer._amax"):
        assert name in state, f"{name} not in the checkpoint: {sorted(state)[:20]}"
    assert state["stem._weight_quantizer._amax"].shape == (8, 1, 1, 1)

    with open(os.path.join(out, "qat_int8.cache")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2", lines[0]
    cache = {}
    for line in lines[1:]:
        name, hexval = line.rsplit(": ", 1)
        cache[name] = struct.unpack(">f", bytes.fromhex(hexval))[0]
    amax = state["stem._input_quantizer._amax"].item()
    assert abs(cache["stem:input_quantizer"] * 127 - amax) <= 1e-6 * amax, (cache, amax)

    with open(os.path.join(out, "amax.json")) as f:
        table = json.load(f)
    assert any(q["name"] == "stem._input_quantizer" for q in table["quantizers"])

    for png in ("accuracy.png", "histogram_layer2.conv1._input_quantizer.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
    print(f"fashion_mnist quick: float {top1['float']:.1f}%, best PTQ {best_ptq:.1f}%, "
          f"{qat[0]} {top1[qat[0]]:.1f}%, {len(cache)} cache entries")


if __name__ == "__main__":
    main()
