using SimClr.Core.Collectives;

namespace SimClr.Core.Config;

public sealed record ReductionOptions
{
    public ReductionMethod Method { get; init; } = ReductionMethod.Auto;

    public ReducePrecision Precision { get; init; } = ReducePrecision.Exact;

    /// <summary>Values per piece the ring streams (pipelining granularity); 0: <see cref="Collectives.RingAllReduce.DefaultPieceElements"/>.</summary>
    public int PieceElements { get; init; }

    /// <summary>The ring sums the gradient in buckets of about this many megabytes (10^6 bytes) of float32, whole stages
    /// of the network, each while backward is still computing the earlier stages (PyTorch DDP's overlap; its default
    /// cap is 25 MB); 0: one ring after the whole backward. Only the last chunk's backward overlaps with gradient caching.</summary>
    public double BucketMegabytes { get; init; } = 25;

    /// <summary><see cref="BucketMegabytes"/> in bytes.</summary>
    public long BucketBytes => (long)Math.Round(BucketMegabytes * 1e6);
}
