namespace SimClr.Core.Config;

public sealed record LossOptions
{
    public double Temperature { get; init; } = 0.5;

    /// <summary>The seed's clamp(min=1e-7) on similarities; not the paper's loss. Off by default.</summary>
    public bool SeedSimilarityClamp { get; init; }
}
