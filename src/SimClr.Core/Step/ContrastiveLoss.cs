using SimClr.Core.Loss;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>SimCLR: the global NT-Xent over all 2B projections.</summary>
public sealed class ContrastiveLoss(NtXentLoss loss) : IStepLoss
{
    public int ViewsPerImage => 2;

    public StepLossValues LossAndGradient(Tensor outputs, long[] batch)
    {
        var (value, gradient) = loss.LossAndGradientTensors(outputs);
        return new StepLossValues(value, gradient, new Dictionary<string, Tensor>());
    }
}
