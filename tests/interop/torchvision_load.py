#!/usr/bin/env python3
"""Loads a backbone written by `simclr export` into PyTorch/torchvision's resnet18 (CIFAR stem, width from the
file) and checks its features on the export's probe input against those the C# side stored in the file.
Needs Debian's python3-torch and python3-torchvision (1.13 / 0.14); safetensors is read with numpy, since the
safetensors package is not in Debian 12.  Run: /usr/bin/python3 tests/interop/torchvision_load.py backbone.safetensors"""
import json
import struct
import sys

import numpy as np
import torch
from torchvision.models.resnet import BasicBlock, ResNet


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    types = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        data = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=types[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(data.copy())
    return tensors, header.get("__metadata__", {})


class CifarResNet18(ResNet):
    """torchvision's resnet18 with SimCLR's CIFAR stem (3x3 conv1, stride 1, no max-pool) and a width multiplier."""

    def __init__(self, width, channels):
        super().__init__(BasicBlock, [2, 2, 2, 2])
        c = lambda k: max(1, int(round(k * width)))
        self.inplanes = c(64)
        self.conv1 = torch.nn.Conv2d(channels, c(64), 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c(64))
        self.maxpool = torch.nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, c(64), 2)
        self.layer2 = self._make_layer(BasicBlock, c(128), 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, c(256), 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, c(512), 2, stride=2)
        self.fc = torch.nn.Identity()


state, meta = read_safetensors(sys.argv[1])
channels = int(meta["input_channels"])
model = CifarResNet18(float(meta["width"]), channels)
result = model.load_state_dict(state, strict=False)
assert not result.missing_keys and not result.unexpected_keys, result
model.eval()
x = torch.arange(2 * channels * 32 * 32, dtype=torch.float32).sin().reshape(2, channels, 32, 32)
with torch.no_grad():
    features = model(x).flatten()
expected = torch.tensor([float(v) for v in meta["probe_features"].split(",")])
difference = (features - expected).abs().max().item()
print(f"torch {torch.__version__}: {len(state)} tensors loaded, no missing or unexpected keys; "
      f"probe features match the C# export to {difference:.2e} (max abs difference)")
sys.exit(0 if difference < 1e-4 else 1)
