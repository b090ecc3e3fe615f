namespace SimClr.Core.Optim;

public enum LearningRateScaling
{
    /// <summary>peak = base x B / 256 (SimCLR's default, base 0.3 with LARS).</summary>
    Linear,

    /// <summary>peak = base x sqrt(B) (SimCLR's alternative for small batches, base 0.075).</summary>
    Sqrt,

    /// <summary>peak = base.</summary>
    None,
}
