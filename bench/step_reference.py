#!/usr/bin/env python3
"""The peer of `simclr bench step`: the same SimCLR training step in PyTorch (Debian's python3-torch 1.13 and
python3-torchvision 0.14), on pre-augmented views, with the same output format.

Same step as the project's (src/SimClr.Core): torchvision's resnet18 with the CIFAR stem (conv1 3x3 stride 1 without
bias, no max-pool) and torchvision's init, fc replaced by the projection head 512 -> 2048 -> ReLU -> 128; 2 x 64
normalised random views, fp32; NT-Xent at temperature 0.5 computed as the project computes it (loss and dL/dz on a
detached copy of z, then z.backward(dL/dz), as DataParallelStep does); LARS exactly as MomentumOptimizer (1-d
parameters get no decay and no trust ratio; trust coefficient 0.02, momentum 0.9, weight decay 1e-6, lr 1.0 x 64 / 256);
gradients zeroed in place before each step. Run: /usr/bin/python3 bench/step_reference.py [--quick] [--device cuda] [--batch 256]
(--batch: images, two views each; the learning rate scales with it as the project's; cuda timings end at a synchronize).
"""
import argparse
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

IMAGES = 64
TEMPERATURE = 0.5
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-6
TRUST = 0.02


def learning_rate(images):
    return 1.0 * images / 256  # linear scaling, as OptimizerOptions.PeakLearningRate


def network():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    model.fc = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 128))
    return model


def nt_xent(z):
    """NtXentLoss.Forward: normalise, cosine / t, self-similarity masked to -inf, cross-entropy to the other view (2k <-> 2k+1)."""
    n2 = z.shape[0]
    unit = F.normalize(z, p=2, dim=1)
    logits = (unit @ unit.t()).div(TEMPERATURE).masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.arange(n2, device=z.device).bitwise_xor(1)
    return F.cross_entropy(logits, positives)


class Lars:
    """MomentumOptimizer.Step with OptimizerKind.Lars, line for line."""

    def __init__(self, parameters):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.momentum = {}

    def zero_grad(self):
        for p in self.parameters:
            if p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, lr):
        for i, p in enumerate(self.parameters):
            grad = p.grad
            if grad is None:
                continue
            excluded = p.dim() <= 1
            g = grad if excluded or WEIGHT_DECAY == 0 else grad.add(p, alpha=WEIGHT_DECAY)
            v = self.momentum.get(i)
            if v is None:
                v = self.momentum[i] = torch.zeros_like(p)
            if excluded:
                step = g.mul(lr)
            else:
                w_norm, g_norm = p.norm(), g.norm()
                ratio = w_norm.mul(TRUST).div(g_norm)
                one = torch.ones_like(ratio)
                ratio = torch.where(w_norm.gt(0), torch.where(g_norm.gt(0), ratio, one), one)
                step = g.mul(ratio.mul_(lr))
            v.mul_(MOMENTUM).add_(step)
            p.sub_(v)


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (simclr bench step takes the same)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median and spread are reported)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up step, 1 repeat of 2 steps (overrides the three above)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (simclr bench step takes the same)")
    parser.add_argument("--batch", type=int, default=IMAGES, help="images per step, two views each (simclr bench step takes the same)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: the forward under torch.autocast(dtype=torch.bfloat16), loss and LARS in float32 (simclr bench step takes the same)")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if args.quick:
        args.steps, args.warmup, args.repeats = 2, 1, 1
    torch.set_num_threads(args.threads)
    model = network().to(device)
    model.train()
    optimizer = Lars(model.parameters())
    torch.manual_seed(1)
    views = torch.randn(2 * args.batch, 3, 32, 32).to(device)  # normalised views, made once: augmentation is not timed

    def one_step():
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            z = model(views)
        z = z.float()
        leaf = z.detach().clone().requires_grad_(True)  # NtXentLoss.LossAndGradient
        loss = nt_xent(leaf)
        loss.backward()
        z.backward(leaf.grad.detach().clone())
        optimizer.step(learning_rate(args.batch))
        return loss.item()

    for _ in range(args.warmup):
        one_step()
    rows = []
    last_loss = float("nan")
    for r in range(args.repeats):
        t0, f0, start = os.times(), minor_faults(), time.perf_counter()
        for _ in range(args.steps):
            last_loss = one_step()
        sync()
        elapsed, t1, f1 = time.perf_counter() - start, os.times(), minor_faults()
        row = (1000 * elapsed / args.steps, (t1.user - t0.user) / args.steps, (t1.system - t0.system) / args.steps, (f1 - f0) / args.steps)
        rows.append(row)
        print(f"repeat {r + 1}: {row[0]:.1f} ms/step, user {row[1]:.3f} s/step, sys {row[2]:.3f} s/step, minor faults {row[3]:.0f}/step", flush=True)
    ms = [x[0] for x in rows]
    median = statistics.median(ms)
    print(f"pytorch step ({device}, {args.precision}, {args.threads} thread(s), {2 * args.batch} views, loss {last_loss:.4f}): median {median:.1f} ms/step "
          f"({2000.0 * args.batch / median:.1f} views/s), "
          f"min {min(ms):.1f}, max {max(ms):.1f}; user {statistics.median(x[1] for x in rows):.3f} s/step, "
          f"sys {statistics.median(x[2] for x in rows):.3f} s/step, minor faults {statistics.median(x[3] for x in rows):.0f}/step "
          f"({args.repeats} repeats of {args.steps} steps after {args.warmup} warm-up), "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
