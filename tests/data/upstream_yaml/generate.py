"""Regenerates these fixtures: YAML exactly as pytorch_quantization 2.2.1's
QuantDescriptor.to_yaml() writes it, i.e. yaml.dump(desc.dict(), width=120) with the axis as a list
and amax as float32 .tolist(). Needs numpy and PyYAML (not pytorch_quantization):
    python generate.py
"""
import numpy as np
import yaml

f32 = lambda v: np.array(v, dtype=np.float32).tolist()
CASES = {
    "default": {"num_bits": 8, "name": None},
    "per_channel_weight": {"num_bits": 8, "name": "conv1.weight", "axis": [0]},
    "fixed_amax_unsigned": {"num_bits": 4, "name": None, "amax": f32(1.1), "unsigned": True},
    "real_quant_scale_amax": {"num_bits": 8, "name": None, "fake_quant": False, "scale_amax": 0.9},
    "learn_amax": {"num_bits": 8, "name": None, "amax": f32(0.8), "learn_amax": True},
    "per_channel_amax": {"num_bits": 8, "name": None, "axis": [1],
                         "amax": f32([[[[0.5]], [[0.75]], [[1.0]]]])},
    "multi_axis": {"num_bits": 8, "name": "x: y", "axis": [1, 2]},
}

for name, fields in CASES.items():
    with open(name + ".yaml", "w") as f:
        f.write(yaml.dump(fields, width=120))
