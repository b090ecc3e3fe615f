using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>SimCLR's projection g(.): Linear(in, hidden) -> ReLU -> Linear(hidden, out); the seed uses 512 -> 2048 -> 128.
/// As an nn.Sequential its parameters are named 0.weight, 0.bias, 2.weight, 2.bias, as in PyTorch.</summary>
public static class ProjectionHead
{
    public static nn.Module<Tensor, Tensor> Create(int inputDim, int hiddenDim = 2048, int outputDim = 128)
    {
        if (inputDim < 1 || hiddenDim < 1 || outputDim < 1)
            throw new ArgumentOutOfRangeException(nameof(hiddenDim), $"projection sizes must be >= 1 (got {inputDim} -> {hiddenDim} -> {outputDim})");
        return nn.Sequential(new MixedLinear(inputDim, hiddenDim), nn.ReLU(), new MixedLinear(hiddenDim, outputDim));
    }
}
