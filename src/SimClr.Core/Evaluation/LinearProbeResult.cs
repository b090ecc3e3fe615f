namespace SimClr.Core.Evaluation;

/// <summary>Result of a linear probe: accuracy per epoch on train and test features, and the final test accuracy.</summary>
public sealed record LinearProbeResult(IReadOnlyList<double> TrainAccuracy, IReadOnlyList<double> TestAccuracy)
{
    public double FinalTestAccuracy => TestAccuracy[^1];
}
