"""What PyTorch's torch.autocast(dtype=torch.bfloat16) does to a whole network's gradient, for MixedPrecisionTests.

torchvision's resnet18 with the CIFAR stem (conv1 3x3 stride 1, no max-pool), random inputs and labels, cross-entropy:
the cosine and relative error of the autocast gradient against float32's, on the CPU. Usage: python3 bench/bf16_reference.py
"""
import torch
import torchvision

torch.manual_seed(5)
for batch in (16, 128):
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def gradient(autocast):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        return torch.cat([p.grad.flatten().double() for p in model.parameters()])

    reference, mixed = gradient(False), gradient(True)
    cosine = torch.nn.functional.cosine_similarity(reference, mixed, 0).item()
    error = ((mixed - reference).norm() / reference.norm()).item()
    print(f"torch {torch.__version__}, resnet18 CIFAR stem, batch {batch}: autocast bf16 gradient cosine {cosine:.3f}, relative error {error:.2f}")
