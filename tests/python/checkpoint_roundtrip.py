"""Checkpoints across languages, driven by ctest.

A small PyTorch model with pytorch_quantization's state names (QuantConv2d, BatchNorm2d,
QuantLinear, a residual QuantAdd with two input quantizers) writes its state dict the way users do
(`torch.save(dict(model.state_dict()), f)`, and the plain OrderedDict too); the C++ test
CheckpointPython.LoadPythonFileAndSaveForPython loads both files into the C++ twin of the model,
checks every value, changes every tensor and saves cpp_state.pt, which this script loads back into
the Python model with load_state_dict(strict=True) and checks.

usage: checkpoint_roundtrip.py <torchquant_tests> <work dir>
"""
import os
import subprocess
import sys

import torch
from torch import nn


class TensorQuantizer(nn.Module):
    """Holds state like pytorch_quantization's TensorQuantizer after calibration."""

    def __init__(self, amax_shape):
        super().__init__()
        self.register_buffer("_amax", torch.zeros(amax_shape))


class QuantConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, padding):
        super().__init__(cin, cout, k, padding=padding)
        self._input_quantizer = TensorQuantizer(())
        self._weight_quantizer = TensorQuantizer((cout, 1, 1, 1))


class QuantLinear(nn.Linear):
    def __init__(self, cin, cout):
        super().__init__(cin, cout)
        self._input_quantizer = TensorQuantizer(())
        self._weight_quantizer = TensorQuantizer((cout, 1))


class QuantAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self._input0_quantizer = TensorQuantizer(())
        self._input1_quantizer = TensorQuantizer(())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = QuantConv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = QuantLinear(4, 2)
        self.add = QuantAdd()


def offset(name):
    return sum(name.encode()) % 1000


def fill(model):
    """Distinct, exactly representable values: (arange + offset(name)) / 64, integers: offset."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(((torch.arange(t.numel()) + offset(name)) / 64).reshape(t.shape))
            else:
                t.fill_(offset(name))


def main():
    tests, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    for f in ("py_state.pt", "py_state_ordered.pt", "cpp_state.pt"):
        if os.path.exists(os.path.join(work, f)):
            os.remove(os.path.join(work, f))
    model = Net()
    fill(model)
    state = model.state_dict()
    assert len(state) == 15, list(state)
    torch.save(dict(state), os.path.join(work, "py_state.pt"))
    torch.save(state, os.path.join(work, "py_state_ordered.pt"))

    env = dict(os.environ, TORCHQUANT_CHECKPOINT_DIR=work, OMP_NUM_THREADS="1")
    subprocess.run([tests, "--gtest_filter=CheckpointPython.*"], env=env, check=True)

    loaded = torch.load(os.path.join(work, "cpp_state.pt"))
    assert isinstance(loaded, dict), type(loaded)
    assert list(loaded) == list(state), (list(loaded), list(state))
    back = Net()
    back.load_state_dict(loaded, strict=True)
    for name, t in back.state_dict().items():
        want = state[name] * 2 if t.is_floating_point() else state[name] + 1
        assert t.dtype == state[name].dtype, name
        assert torch.equal(t, want), (name, t, want)
    print(f"checkpoint round trip: {len(state)} tensors Python -> C++ -> Python, all equal")


if __name__ == "__main__":
    main()
