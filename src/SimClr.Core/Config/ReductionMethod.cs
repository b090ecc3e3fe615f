namespace SimClr.Core.Config;

/// <summary>How the workers' gradients are summed (<see cref="Training.DataParallelStep"/>).</summary>
public enum ReductionMethod
{
    /// <summary>NCCL when every replica is a worker on a CUDA device that loaded it; else the ring between workers when every
    /// replica is a worker that can take part; else the star.</summary>
    Auto,

    /// <summary>Bandwidth-optimal ring all-reduce between the workers (<see cref="Collectives.RingAllReduce"/>); the
    /// coordinator moves no gradient and its traffic does not grow with the workers.</summary>
    Ring,

    /// <summary>Every gradient to the coordinator, the sum back to every worker (traffic 2N x the gradient through it).</summary>
    Star,

    /// <summary>NCCL between the workers' GPUs (<see cref="Runtime.Nccl"/>): each bucket summed on the device as backward
    /// finishes it; every worker must be on CUDA with NCCL loaded, else the run stops before its first step saying why.</summary>
    Nccl,
}
