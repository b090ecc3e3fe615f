namespace SimClr.Core.Config;

/// <summary>Network shape; input channels come from the data set.</summary>
public sealed record ModelOptions
{
    public BatchNormStatistics BatchNorm { get; init; } = BatchNormStatistics.Batch;

    public double Width { get; init; } = 1.0;

    public int ProjectionHidden { get; init; } = 2048;

    public int ProjectionDim { get; init; } = 128;
}
