#!/usr/bin/env python3
"""Loads a backbone written by `simclr export` into PyTorch/torchvision's resnet18, resnet34 or resnet50 (arch, stem,
width and input channels from the file) and checks its features on the export's probe input against those the C#
side stored in the file.
Needs Debian's python3-torch and python3-torchvision (1.13 / 0.14); safetensors is read with numpy, since the
safetensors package is not in Debian 12.  Run: /usr/bin/python3 tests/interop/torchvision_load.py backbone.safetensors"""
import json
import struct
import sys

import numpy as np
import torch
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet


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


ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]), "resnet50": (Bottleneck, [3, 4, 6, 3])}


class WideResNet(ResNet):
    """torchvision's ResNet with a width multiplier on its stages (64/128/256/512 at 1.0), its ImageNet stem (7x7
    stride 2, max-pool) or SimCLR's CIFAR stem (3x3 conv1, stride 1, no max-pool), and no fc."""

    def __init__(self, arch, stem, width, channels):
        block, layers = ARCHS[arch]
        super().__init__(block, layers)
        c = lambda k: max(1, int(round(k * width)))
        self.inplanes = c(64)
        if stem == "cifar":
            self.conv1 = torch.nn.Conv2d(channels, c(64), 3, 1, 1, bias=False)
            self.maxpool = torch.nn.Identity()
        else:
            self.conv1 = torch.nn.Conv2d(channels, c(64), 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c(64))
        self.layer1 = self._make_layer(block, c(64), layers[0])
        self.layer2 = self._make_layer(block, c(128), layers[1], stride=2)
        self.layer3 = self._make_layer(block, c(256), layers[2], stride=2)
        self.layer4 = self._make_layer(block, c(512), layers[3], stride=2)
        self.fc = torch.nn.Identity()


state, meta = read_safetensors(sys.argv[1])
channels = int(meta["input_channels"])
arch, stem = meta.get("arch", "resnet18"), meta.get("stem", "cifar")  # exports before model.arch: resnet18, CIFAR stem
model = WideResNet(arch, stem, float(meta["width"]), channels)
if float(meta["width"]) == 1.0 and channels == 3:  # full width: torchvision's own constructor must take it too
    reference = getattr(__import__("torchvision").models, arch)()
    if stem == "cifar":
        reference.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        reference.maxpool = torch.nn.Identity()
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(state, strict=False)
    model = reference
result = model.load_state_dict(state, strict=False)
assert not result.missing_keys and not result.unexpected_keys, result
model.eval()
x = torch.arange(2 * channels * 32 * 32, dtype=torch.float32).sin().reshape(2, channels, 32, 32)
with torch.no_grad():
    features = model(x).flatten()
expected = torch.tensor([float(v) for v in meta["probe_features"].split(",")])
difference = (features - expected).abs().max().item()
print(f"torch {torch.__version__}, torchvision {arch} ({stem} stem, width {meta['width']}): {len(state)} tensors loaded, no missing or unexpected keys; "
      f"probe features match the C# export to {difference:.2e} (max abs difference)")
sys.exit(0 if difference < 1e-4 else 1)
