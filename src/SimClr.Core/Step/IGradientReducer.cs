using SimClr.Core.Config;

namespace SimClr.Core.Step;

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
