using SimClr.Core.Loss;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>SimCLR: the global NT-Xent over all 2B projections.</summary>
public sealed class ContrastiveLoss(NtXentLoss loss) : IStepLoss
{
    public int ViewsPerImage => 2;

    public (double Loss, Tensor Gradient, Dictionary<string, double> Metrics) LossAndGradient(Tensor outputs, long[] batch)
    {
        var (value, gradient) = loss.LossAndGradient(outputs);
        return (value, gradient, []);
    }
}
