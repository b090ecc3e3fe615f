using System.Runtime.ExceptionServices;
using SimClr.Core.Collectives;

namespace SimClr.Core.Step;

/// <summary>The values of a phase's calls (<see cref="StepClock.Phase"/>), or the phase's failure: replicas whose call
/// failed as lost, together (<see cref="StepFailedException"/>); a broken ring; anything else is rethrown as it is.</summary>
internal static class PhaseResults
{
    /// <summary>Every call's value; lost replicas end the attempt (<paramref name="applied"/>: the survivors' result when
    /// they applied the step before the loss, null when none did).</summary>
    public static T[] Values<T>(List<Task<Timed<T>>> calls, IReadOnlyList<IReplicaEndpoint> replicas, Func<StepResult?>? applied = null)
    {
        if (calls.All(c => c.IsCompletedSuccessfully)) return calls.Select(c => c.Result.Value).ToArray();
        var other = calls.FirstOrDefault(c => (c.IsFaulted && c.Exception!.InnerException is not ReplicaLostException) || c.IsCanceled);
        other?.GetAwaiter().GetResult();
        var lost = calls.Select((c, w) => (c, w)).Where(x => x.c.IsFaulted).ToList();
        throw new StepFailedException(new StepFailure(lost.Select(x => replicas[x.w]).ToList(),
            string.Join("; ", lost.Select(x => x.c.Exception!.InnerException!.Message)), applied?.Invoke()));
    }

    /// <summary>
    /// The ring phase's values. When a call failed the others were cancelled: the replicas whose own call failed as lost
    /// end the attempt as lost; with none lost, the ring broke; any other failure is rethrown as it is.
    /// </summary>
    public static T[] RingValues<T>(List<Task<Timed<T>>> calls, IReadOnlyList<IReplicaEndpoint> replicas, CancellationToken cancel)
    {
        if (calls.All(c => c.IsCompletedSuccessfully)) return calls.Select(c => c.Result.Value).ToArray();
        cancel.ThrowIfCancellationRequested();
        var failed = calls.Select((c, w) => (Error: c.Exception?.InnerException, w)).Where(x => x.Error is not null).ToList();
        var other = failed.FirstOrDefault(x => x.Error is not (ReplicaLostException or RingBrokenException or OperationCanceledException));
        if (other.Error is not null) ExceptionDispatchInfo.Throw(other.Error);
        var lost = failed.Where(x => x.Error is ReplicaLostException).ToList();
        if (lost.Count > 0)
            throw new StepFailedException(new StepFailure(lost.Select(x => replicas[x.w]).ToList(), string.Join("; ", lost.Select(x => x.Error!.Message))));
        var broken = failed.Where(x => x.Error is RingBrokenException).Select(x => $"{replicas[x.w].Name}: {x.Error!.Message}").ToList();
        throw new StepFailedException(new StepFailure([], broken.Count > 0 ? string.Join("; ", broken) : "a ring call was cancelled"));
    }
}
