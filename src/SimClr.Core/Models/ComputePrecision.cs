using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// The number format the convolutions and linear layers compute in (config <c>precision</c>). The weights, their
/// gradients and the optimiser stay float32 either way (master weights); batch norm, the pooling and the losses get
/// float32 inputs.
/// </summary>
public enum ComputePrecision
{
    /// <summary>float32 throughout (the default; on CUDA, PyTorch's own TF32 rules for convolutions apply).</summary>
    Fp32,

    /// <summary>
    /// bfloat16 compute, as torch.autocast(dtype=torch.bfloat16) does it for these layers: each convolution and linear
    /// layer casts its input and its float32 weight to bfloat16, computes, and returns float32. The cast is part of the
    /// graph, so each weight's gradient arrives in float32. bfloat16 keeps float32's exponent range, so no loss scaling.
    /// </summary>
    Bf16,
}

/// <summary>A layer that computes in a <see cref="ComputePrecision"/> (<see cref="Conv2d"/>, <see cref="MixedLinear"/>).</summary>
public interface IMixedPrecisionLayer
{
    ComputePrecision Precision { get; set; }
}

public static class MixedPrecision
{
    /// <summary>Sets the compute precision of every convolution and linear layer in <paramref name="network"/>; returns
    /// how many layers it set.</summary>
    public static int Apply(nn.Module network, ComputePrecision precision)
    {
        int layers = 0;
        foreach (var module in network.modules().Prepend(network))
        {
            if (module is IMixedPrecisionLayer layer)
            {
                layer.Precision = precision;
                layers++;
            }
        }
        return layers;
    }

    /// <summary>The tensor a layer of this precision computes with: itself in fp32, a bfloat16 copy (in the graph) in bf16.</summary>
    internal static Tensor Input(Tensor tensor, ComputePrecision precision) =>
        precision == ComputePrecision.Bf16 && tensor.dtype != ScalarType.BFloat16 ? tensor.to(ScalarType.BFloat16) : tensor;

    /// <summary>A layer's output as the next layer takes it: float32.</summary>
    internal static Tensor Output(Tensor tensor) => tensor.dtype == ScalarType.Float32 ? tensor : tensor.to(ScalarType.Float32);
}
