using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>
/// The one place that decides what a failed attempt leads to (<see cref="FaultOptions"/>): under fail-fast a lost
/// worker stops the run; under the elastic policy a step lost before any replica applied it is redone over the
/// survivors, one lost while applying goes on with them, and below the minimum the run waits for joiners or stops. A
/// ring broken with no replica lost is retried, <see cref="RingAttempts"/> times in a row at most.
/// </summary>
public sealed class StepRecovery(FaultOptions? faults = null)
{
    private readonly FaultOptions _faults = faults ?? new FaultOptions();
    private int _ringFailures; // rings broken in a row with no replica lost

    /// <summary>Rings that may break in a row (no replica lost) before the step gives up.</summary>
    public const int RingAttempts = 3;

    /// <summary>An attempt completed: the count of broken rings starts again.</summary>
    public void Succeeded() => _ringFailures = 0;

    /// <summary>What follows <paramref name="failure"/> at <paramref name="step"/>, with <paramref name="active"/>
    /// replicas left (the lost ones already dropped), and the message that says so.</summary>
    public (Recovery Next, string Message) Decide(StepFailure failure, long step, int active)
    {
        if (failure.RingBroken && failure.Nccl)
        {
            if (++_ringFailures >= RingAttempts)
            {
                return (Recovery.Stop, $"the workers' NCCL all-reduce broke {RingAttempts} times in a row at step {step} with no worker lost "
                    + $"({failure.Reason}). The workers' GPUs must reach each other over NCCL's transports (NCCL_DEBUG=INFO in the workers' "
                    + "environment says which they tried; NCCL_SOCKET_IFNAME picks the interface); or set reduction.method to ring or star.");
            }
            return (Recovery.Redo, $"the NCCL all-reduce broke at step {step} ({failure.Reason}); redoing the step on a new communicator");
        }
        if (failure.RingBroken)
        {
            if (++_ringFailures >= RingAttempts)
            {
                return (Recovery.Stop, $"the workers' ring all-reduce broke {RingAttempts} times in a row at step {step} with no worker lost "
                    + $"({failure.Reason}). Every worker must reach the others at the addresses the coordinator uses; or set reduction.method to star.");
            }
            return (Recovery.Redo, $"the ring all-reduce broke at step {step} ({failure.Reason}); redoing the step");
        }
        string who = string.Join(", ", failure.Lost.Select(r => r.Name));
        if (_faults.Policy == FaultPolicy.FailFast)
            return (Recovery.Stop, $"lost {who} at step {step}: {failure.Reason}; faults.policy is fail-fast");
        if (active < _faults.MinWorkers)
            return (Recovery.Wait, $"lost {who} at step {step}: {failure.Reason}; {active} worker(s) left, faults.minWorkers is {_faults.MinWorkers}");
        if (failure.Applied is not null)
            return (Recovery.GoOn, $"lost {who} while applying step {step} ({failure.Reason}); the {active} other(s) applied it and go on");
        return (Recovery.Redo, $"lost {who} at step {step} ({failure.Reason}); redoing the step over {active} worker(s), same batch, views and BN groups");
    }
}
