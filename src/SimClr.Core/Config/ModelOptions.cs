namespace SimClr.Core.Config;

/// <summary>Network shape; input channels come from the data set.</summary>
public sealed record ModelOptions
{
    public BatchNormStatistics BatchNorm { get; init; } = BatchNormStatistics.Batch;

    /// <summary>resnet18 (the seed's), resnet34 or resnet50 (bottlenecks, 2048 features: the paper's).</summary>
    public Models.ResNetArch Arch { get; init; } = Models.ResNetArch.Resnet18;

    /// <summary>cifar, imagenet, or auto: cifar for views (augment.outputSize) of up to 64 pixels, else imagenet.</summary>
    public Models.ResNetStem Stem { get; init; } = Models.ResNetStem.Auto;

    public double Width { get; init; } = 1.0;

    public int ProjectionHidden { get; init; } = 2048;

    public int ProjectionDim { get; init; } = 128;
}
