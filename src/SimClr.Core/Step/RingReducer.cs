using SimClr.Core.Collectives;
using SimClr.Core.Config;

namespace SimClr.Core.Step;

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
