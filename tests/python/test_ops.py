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

# A gradient Python holds is left as it was (the backward writes only into a gradient autograd
# handed over, such as the one MulBackward makes here: x.grad is then that gradient's memory).
x.grad = None
y = ops.fake_tensor_quant(x, torch.tensor(2.0))
held = torch.tensor([5.0, 6.0, 7.0, 8.0, 9.0])
y.backward(held)
assert held.tolist() == [5.0, 6.0, 7.0, 8.0, 9.0], held
assert x.grad.tolist() == [0.0, 6.0, 7.0, 8.0, 0.0], x.grad
x.grad = None
y = ops.fake_tensor_quant(x, torch.tensor(2.0))
handed = []
y.register_hook(lambda g: handed.append(g.data_ptr()))
(y * 3).sum().backward()
assert x.grad.tolist() == [0.0, 3.0, 3.0, 3.0, 0.0], x.grad
assert handed == [x.grad.data_ptr()], (handed, x.grad.data_ptr())
x.grad = None
y = ops.fake_tensor_quant(x, torch.tensor(2.0))
kept = []
y.register_hook(lambda g: kept.append(g))  # Python now holds the gradient: not written into
(y * 3).sum().backward()
assert kept[0].tolist() == [3.0] * 5, kept
assert x.grad.tolist() == [0.0, 3.0, 3.0, 3.0, 0.0], x.grad

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

# fake_affine_tensor_quant (the fused CPU kernel) gives the bits of upstream's Python formula in
# float32 and float16, its gradient passes where min_range <= x <= max_range, and it traces on Meta.
lo, hi = torch.tensor(-1.5), torch.tensor(2.5)
for dtype in (torch.float32, torch.float16):
    x = (torch.randn(1000) * 2).to(dtype)
    step = (hi - lo) / 255
    zero = torch.round(lo / step) + 128
    want = (torch.clamp(torch.round(x / step) - zero, -128, 127) + zero) * step
    x.requires_grad_(True)
    got = ops.fake_affine_tensor_quant(x, lo, hi, 8)
    assert got.dtype == dtype and torch.equal(got.detach(), want), (got, want)
    got.backward(torch.ones(1000, dtype=dtype))
    assert torch.equal(x.grad, ((x >= lo) & (x <= hi)).to(dtype)), x.grad
meta = ops.fake_affine_tensor_quant(torch.empty(3, 4, device="meta"), lo.to("meta"), hi.to("meta"))
assert meta.shape == (3, 4) and meta.device.type == "meta", meta

print("python ops: 10 passed, 0 failed")
