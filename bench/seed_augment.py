#!/usr/bin/env python3
"""The seed's augmentation pipeline (PIL + torchvision, per image), measured as views/s on ONE core: the peer for
`simclr bench augment`. Needs Debian's python3-torchvision (0.14): apt-get install python3-torchvision.
Run: /usr/bin/python3 bench/seed_augment.py [--views 20000] [--repeats 5]"""
import argparse
import statistics
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

parser = argparse.ArgumentParser()
parser.add_argument("--views", type=int, default=20_000)
parser.add_argument("--repeats", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(1)

# the seed's train_transforms, verbatim
train_transforms = transforms.Compose([
    transforms.RandomResizedCrop(32),
    transforms.RandomHorizontalFlip(p=0.5),
    transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
    transforms.RandomGrayscale(p=0.2),
    transforms.ToTensor(),
    transforms.Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
])

rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(1000)]
rates = []
for _ in range(args.repeats):
    start = time.perf_counter()
    for k in range(args.views):
        train_transforms(images[k % len(images)])  # the seed's CIFAR10Pair calls this twice per image
    rates.append(args.views / (time.perf_counter() - start))
print(f"seed pipeline (PIL + torchvision {torchvision.__version__}), 1 thread: "
      f"median {statistics.median(rates):.0f} views/s, min {min(rates):.0f}, max {max(rates):.0f} ({args.repeats} runs of {args.views})")
