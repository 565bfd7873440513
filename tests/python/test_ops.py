"""Loads libtorchquant.so into the project venv's torch and checks the ops from Python."""
import sys

import torch

torch.ops.load_library(sys.argv[1])
ops = torch.ops.torchquant

torch.manual_seed(12345)
x = torch.rand(10)
amax = x.abs().max()
fq = ops.fake_tensor_quant(x, amax)
expected = torch.tensor([0.9843, 0.8828, 0.9921, 0.4609, 0.0859, 0.1797, 0.3672, 0.5703, 0.3359, 0.2109])
assert torch.allclose(fq, expected, atol=1e-4), fq
q, scale = ops.tensor_quant(x, amax, num_bits=8, unsigned=False, narrow_range=True)
assert q.tolist() == [126.0, 113.0, 127.0, 59.0, 11.0, 23.0, 47.0, 73.0, 43.0, 27.0], q
assert abs(scale.item() - 128.0057) < 1e-4

# Straight-through gradient, inclusive at |x| == amax.
x = torch.tensor([-3.0, -2.0, 0.5, 2.0, 2.5], requires_grad=True)
ops.fake_tensor_quant(x, torch.tensor(2.0)).sum().backward()
assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0], x.grad

# Works inside TorchScript too.
@torch.jit.script
def scripted(t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return torch.ops.torchquant.fake_tensor_quant(t, a, 4)

y = torch.randn(6)
assert torch.equal(scripted(y, torch.tensor(1.0)), ops.fake_tensor_quant(y, torch.tensor(1.0), 4))

try:
    ops.fake_tensor_quant(y, torch.tensor(-1.0))
    raise AssertionError("negative amax accepted")
except RuntimeError as e:
    assert "amax must be non-negative" in str(e), e

print("python ops: 5 passed, 0 failed")
