namespace SimClr.Core.Step;

/// <summary>
/// Why an attempt at a step did not complete: replicas lost (their calls failed with <see cref="ReplicaLostException"/>),
/// or, with none lost, a ring that broke. <see cref="Applied"/>: the survivors had already applied the step (a replica
/// was lost while applying it), with their result. <see cref="StepRecovery"/> decides what follows.
/// </summary>
public sealed record StepFailure(IReadOnlyList<IReplicaEndpoint> Lost, string Reason, StepResult? Applied = null)
{
    /// <summary>The attempt summed over NCCL (<see cref="NcclReducer"/>): a break is the communicator's, not the ring's.</summary>
    public bool Nccl { get; init; }

    public bool RingBroken => Lost.Count == 0;
}

/// <summary>Carries a <see cref="StepFailure"/> from a phase out of the attempt to <see cref="DataParallelStep.Run"/>,
/// the one place that catches it.</summary>
internal sealed class StepFailedException(StepFailure failure) : Exception(failure.Reason)
{
    public StepFailure Failure { get; } = failure;
}
