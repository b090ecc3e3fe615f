namespace SimClr.Core.Config;

/// <summary>How BatchNorm normalises during pre-training.</summary>
public enum BatchNormStatistics
{
    /// <summary>Statistics of each forward batch (standard; per device/shard in distributed runs).</summary>
    Batch,

    /// <summary>Running statistics only, never updated: outputs do not depend on the batch. For equivalence tests
    /// and debugging (any sharding gives the same maths), not for real training.</summary>
    Frozen,
}
