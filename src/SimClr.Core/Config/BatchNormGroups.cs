namespace SimClr.Core.Config;

/// <summary>Which views share a BatchNorm batch when a step is split over workers or chunks.</summary>
public enum BatchNormGroups
{
    /// <summary><see cref="Cross"/> when a step is split (workers x chunks > 1), else <see cref="Local"/>.</summary>
    Auto,

    /// <summary>Both views of an image in the same shard/chunk (the seed's per-device BN).</summary>
    Local,

    /// <summary>View 0 and view 1 of an image in different shards/chunks: no BN batch holds a positive pair, so the
    /// network cannot match views through batch statistics (the paper's reason for global BN), at no cost.</summary>
    Cross,
}
