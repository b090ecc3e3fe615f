using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>
/// How a step's replicas back-propagate their rows of dL/dz and sum their gradients, chosen once per run
/// (<see cref="Choose"/>): <see cref="StarReducer"/> (every gradient through the coordinator) or <see cref="RingReducer"/>
/// (the workers among themselves over gRPC) or <see cref="NcclReducer"/> (NCCL between the workers' GPUs); the step does not change.
/// </summary>
public interface IGradientReducer
{
    /// <summary>Back-propagates <paramref name="dz"/>[w] on replica w and sums the gradients; a lost replica or broken
    /// ring ends the attempt (<see cref="PhaseResults"/>).</summary>
    Reduction Reduce(IReadOnlyList<IReplicaEndpoint> replicas, IReadOnlyList<FloatBlock> dz, StepClock clock, CancellationToken cancel);

    /// <summary>NCCL when every replica is a worker that can use it (reduction.method auto or nccl; nccl insists, and a
    /// replica that cannot gets a <see cref="ConfigException"/> saying why, before the first step); else the ring
    /// when every replica can take part in one (auto or ring; ring insists, with a <see cref="ConfigException"/>); else the star.</summary>
    public static IGradientReducer Choose(ReductionOptions reduction, IReadOnlyList<IReplicaEndpoint> replicas)
    {
        if (reduction.Method == ReductionMethod.Nccl)
        {
            var unable = replicas.FirstOrDefault(r => r.DeviceCollective is null);
            if (unable is not null)
                throw new ConfigException($"reduction.method is nccl, but {unable.Name} cannot use NCCL: {unable.DeviceCollectiveProblem}");
            return new NcclReducer(reduction);
        }
        if (reduction.Method == ReductionMethod.Star || replicas.Count < 2) return new StarReducer();
        if (reduction.Method == ReductionMethod.Auto && replicas.All(r => r.DeviceCollective is not null)) return new NcclReducer(reduction);
        var alone = replicas.FirstOrDefault(r => r.PeerAddress is null);
        if (alone is null) return new RingReducer(reduction);
        if (reduction.Method == ReductionMethod.Ring)
            throw new ConfigException($"reduction.method is ring, but {alone.Name} cannot take part in a ring (in-process replicas cannot)");
        return new StarReducer();
    }
}
