using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// torch.nn.Linear(in, out) with its parameters named weight [out, in] and bias [out], initialised by the same draws of
/// torch's generator (it takes them from an nn.Linear made for the purpose), that computes in a
/// <see cref="ComputePrecision"/>: in bf16 it casts its input, weight and bias to bfloat16 and returns float32.
/// </summary>
#pragma warning disable IDE1006 // PyTorch's parameter names
public sealed class MixedLinear : nn.Module<Tensor, Tensor>, IMixedPrecisionLayer
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    public MixedLinear(long inFeatures, long outFeatures) : base(nameof(MixedLinear))
    {
        using (var drawn = nn.Linear(inFeatures, outFeatures))
        using (no_grad())
        {
            weight = new Parameter(drawn.weight.detach().clone());
            bias = new Parameter(drawn.bias!.detach().clone());
        }
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        RegisterComponents();
    }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    public Parameter Weight => weight;

    public Parameter Bias => bias;

    public ComputePrecision Precision { get; set; }

    public override Tensor forward(Tensor input)
    {
        if (Precision == ComputePrecision.Fp32) return nn.functional.linear(input, weight, bias);
        using var scope = NewDisposeScope();
        var output = nn.functional.linear(
            MixedPrecision.Input(input, Precision), MixedPrecision.Input(weight, Precision), MixedPrecision.Input(bias, Precision));
        return MixedPrecision.Output(output).MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
