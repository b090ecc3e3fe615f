namespace SimClr.Core.Config;

/// <summary>How the workers' gradients are summed (<see cref="Training.DataParallelStep"/>).</summary>
public enum ReductionMethod
{
    /// <summary>The ring between workers when every replica is a worker that can take part, else the star.</summary>
    Auto,

    /// <summary>Bandwidth-optimal ring all-reduce between the workers (<see cref="Collectives.RingAllReduce"/>); the
    /// coordinator moves no gradient and its traffic does not grow with the workers.</summary>
    Ring,

    /// <summary>Every gradient to the coordinator, the sum back to every worker (traffic 2N x the gradient through it).</summary>
    Star,
}
