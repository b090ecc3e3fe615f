using SimClr.Core.Collectives;
using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>What a reduction leaves for the apply phase: where each replica's gradient comes from, and the NaN and
/// infinite values in the sum.</summary>
public sealed record Reduction(StepGradient Gradient, long NonFinite);

/// <summary>
/// How a step's replicas back-propagate their rows of dL/dz and sum their gradients, chosen once per run
/// (<see cref="Choose"/>): <see cref="StarReducer"/> (every gradient through the coordinator) or <see cref="RingReducer"/>
/// (the workers among themselves). A third backend (NCCL between the GPUs of a box) plugs in here; the step does not change.
/// </summary>
public interface IGradientReducer
{
    /// <summary>Back-propagates <paramref name="dz"/>[w] on replica w and sums the gradients; a lost replica or broken
    /// ring ends the attempt (<see cref="PhaseResults"/>).</summary>
    Reduction Reduce(IReadOnlyList<IReplicaEndpoint> replicas, IReadOnlyList<FloatBlock> dz, StepClock clock, CancellationToken cancel);

    /// <summary>The ring when every replica can take part in one (reduction.method auto or ring; ring insists), else the star.</summary>
    public static IGradientReducer Choose(ReductionOptions reduction, IReadOnlyList<IReplicaEndpoint> replicas)
    {
        if (reduction.Method == ReductionMethod.Star || replicas.Count < 2) return new StarReducer();
        var alone = replicas.FirstOrDefault(r => r.PeerAddress is null);
        if (alone is null) return new RingReducer(reduction);
        if (reduction.Method == ReductionMethod.Ring)
            throw new InvalidOperationException($"reduction.method is ring, but {alone.Name} cannot take part in a ring (in-process replicas cannot)");
        return new StarReducer();
    }
}

/// <summary>Every replica's gradient to this process, the sum (<see cref="GradientSum"/>) back with the apply; one
/// replica keeps its own and sends nothing.</summary>
public sealed class StarReducer : IGradientReducer
{
    public Reduction Reduce(IReadOnlyList<IReplicaEndpoint> replicas, IReadOnlyList<FloatBlock> dz, StepClock clock, CancellationToken cancel)
    {
        bool single = replicas.Count == 1;
        var gradients = PhaseResults.Values(clock.Phase(replicas, (r, w) => r.BackwardAsync(dz[w], returnGradient: !single, cancel)), replicas);
        if (single) return new Reduction(StepGradient.Own, 0); // the replica checks its own gradient when it applies it
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var sum = GradientSum.Sum(gradients, replicas.Select(r => r.Name).ToList(), out long bad);
        clock.ReduceMs = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return new Reduction(StepGradient.Sent(sum), bad);
    }
}

/// <summary>Backward and the workers' ring all-reduce in one call each (<see cref="IReplicaEndpoint.BackwardReduceAsync"/>):
/// the sum stays on the workers for the apply, this process moves no gradient. A call that fails makes the others stop at
/// once. With one replica left there is nothing to ring: the star's single-replica path.</summary>
public sealed class RingReducer(ReductionOptions reduction) : IGradientReducer
{
    private readonly StarReducer _alone = new();

    public Reduction Reduce(IReadOnlyList<IReplicaEndpoint> replicas, IReadOnlyList<FloatBlock> dz, StepClock clock, CancellationToken cancel)
    {
        if (replicas.Count < 2) return _alone.Reduce(replicas, dz, clock, cancel);
        var ring = new RingPlan((ulong)Random.Shared.NextInt64(1, long.MaxValue), replicas.Select(r => r.PeerAddress!).ToList(), reduction.Precision,
            reduction.PieceElements > 0 ? reduction.PieceElements : RingAllReduce.DefaultPieceElements, reduction.BucketBytes);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var counts = PhaseResults.RingValues(clock.Phase(replicas, (r, w) => r.BackwardReduceAsync(dz[w], ring, w, abort.Token), abort), replicas, cancel);
        return new Reduction(StepGradient.Ring, counts.Sum());
    }
}
