namespace SimClr.Core.Optim;

/// <summary>
/// Optimiser hyper-parameters. Parameters with one dimension (BatchNorm weights and biases, all biases) get no weight
/// decay and no trust ratio, as SimCLR excludes them.
/// </summary>
public sealed record OptimizerOptions
{
    public OptimizerKind Kind { get; init; } = OptimizerKind.Lars;

    public double BaseLearningRate { get; init; } = 0.3;

    public LearningRateScaling Scaling { get; init; } = LearningRateScaling.Linear;

    public double Momentum { get; init; } = 0.9;

    public double WeightDecay { get; init; } = 1e-6;

    public double TrustCoefficient { get; init; } = 0.001;

    public double PeakLearningRate(int batchSize) => Scaling switch
    {
        LearningRateScaling.Linear => BaseLearningRate * batchSize / 256.0,
        LearningRateScaling.Sqrt => BaseLearningRate * Math.Sqrt(batchSize),
        _ => BaseLearningRate,
    };

    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (!(BaseLearningRate > 0) || double.IsInfinity(BaseLearningRate)) problems.Add($"optimizer.baseLearningRate must be > 0 (got {BaseLearningRate})");
        if (!(Momentum >= 0 && Momentum < 1)) problems.Add($"optimizer.momentum must be in [0, 1) (got {Momentum})");
        if (!(WeightDecay >= 0)) problems.Add($"optimizer.weightDecay must be >= 0 (got {WeightDecay})");
        if (!(TrustCoefficient > 0)) problems.Add($"optimizer.trustCoefficient must be > 0 (got {TrustCoefficient})");
        return problems;
    }
}
