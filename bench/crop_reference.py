#!/usr/bin/env python3
"""torchvision's RandomResizedCrop(32) crop-size distribution on a 32x32 image: the reference numbers that
tests/SimClr.Core.Tests/Augmentation/ViewSamplerTests.cs compares the project's sampler with.
Needs Debian's python3-torchvision (0.14): apt-get install python3-torchvision; run with /usr/bin/python3."""
import numpy as np
import torch
import torchvision
from torchvision.transforms import RandomResizedCrop

torch.manual_seed(0)
crop = RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
image = torch.zeros(3, 32, 32)
draws = [crop.get_params(image, crop.scale, crop.ratio) for _ in range(200_000)]
area = np.array([h * w / 1024 for _, _, h, w in draws])
log_aspect = np.log([w / h for _, _, h, w in draws])
print(f"torchvision {torchvision.__version__}, {len(draws)} draws")
print(f"area fraction: mean {area.mean():.4f} std {area.std():.4f} min {area.min():.4f} max {area.max():.4f}")
print("P(area <= x):", " ".join(f"{x:.1f}:{np.mean(area <= x):.4f}" for x in np.arange(0.1, 1.0, 0.1)))
print(f"log(w/h): mean {log_aspect.mean():.4f} std {log_aspect.std():.4f}")
