using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// The coordinator's half of a data-parallel step: one loss over the outputs of the whole global batch, gathered from
/// every replica in the global row order, and its gradient with respect to those outputs, computed on the outputs'
/// device and left there (the step reads what it needs in one copy).
/// </summary>
public interface IStepLoss
{
    /// <summary>Views per image: 2 for SimCLR (rows 2b and 2b+1 are image b's), 1 for a classifier (row b is image b).</summary>
    int ViewsPerImage { get; }

    /// <summary>The loss over <paramref name="outputs"/> ([views, d], global order) of the images <paramref name="batch"/>,
    /// dL/d(outputs), and any counts of the step (summed: "correct", "seen").</summary>
    StepLossValues LossAndGradient(Tensor outputs, long[] batch);
}
