using SimClr.Core.Collectives;

namespace SimClr.Core.Step;

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
