namespace SimClr.Core.Step;

/// <summary>
/// What one step reports: how it ended, the global loss, the replicas' common parameter checksum (when compared), the
/// loss's metrics, why it was skipped or stopped, and where its time went.
/// </summary>
public sealed record StepResult(StepStatus Status, double Loss, string? Checksum, IReadOnlyDictionary<string, double> Metrics)
{
    /// <summary>Why the step was skipped or the run stopped; null when applied.</summary>
    public string? Reason { get; init; }

    /// <summary>With <see cref="StepStatus.Stopped"/>: the survivors had applied the step before the loss that stops the run.</summary>
    public bool AppliedBeforeStop { get; init; }

    /// <summary>Stopped because workers were lost (not because the ring kept breaking).</summary>
    public bool WorkersLost { get; init; }

    /// <summary>Where the step's time went (of the attempt that produced this result).</summary>
    public StepTimes? Times { get; init; }

    /// <summary>Why the step was NOT applied (skipped), or null.</summary>
    public string? NotApplied => Status == StepStatus.Skipped ? Reason : null;

    public static StepResult Skip(double loss, IReadOnlyDictionary<string, double> metrics, string reason, StepTimes times) =>
        new(StepStatus.Skipped, loss, null, metrics) { Reason = reason, Times = times };
}
