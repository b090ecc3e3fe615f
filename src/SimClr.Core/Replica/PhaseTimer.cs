using System.Diagnostics;

namespace SimClr.Core.Replica;

/// <summary>
/// Milliseconds a replica spends by phase, beside its data path: the replica marks phase boundaries, the caller takes
/// the totals (<see cref="Take"/>) after each call. On a device that runs asynchronously (CUDA), <paramref name="synchronize"/>
/// is called at every boundary while <see cref="Synchronizing"/>, so the times are the kernels' too, at the cost of those
/// few synchronisations per step; the replica turns it on for one step in timePhasesEverySteps, and the other steps' times
/// (the host's alone) are marked <see cref="ReplicaTimes.Unsynchronized"/>.
/// </summary>
public sealed class PhaseTimer(Action? synchronize = null)
{
    private readonly double[] _ms = new double[Enum.GetValues<ReplicaPhase>().Length];

    /// <summary>Whether marks wait for the device (always true where there is nothing to wait for).</summary>
    public bool Synchronizing { get; set; } = true;

    /// <summary>Whether the times are the device's: the device is synchronous, or the marks wait for it.</summary>
    public bool Exact => synchronize is null || Synchronizing;

    /// <summary>A point in time after the device has finished its queued work (when <see cref="Synchronizing"/>).</summary>
    public long Mark()
    {
        if (Synchronizing) synchronize?.Invoke();
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Adds the time from <paramref name="start"/> (a <see cref="Mark"/>) to now to <paramref name="phase"/>; returns now.</summary>
    public long Add(ReplicaPhase phase, long start)
    {
        long now = Mark();
        _ms[(int)phase] += Stopwatch.GetElapsedTime(start, now).TotalMilliseconds;
        return now;
    }

    /// <summary>The milliseconds of <paramref name="phase"/> since the last <see cref="Take"/>.</summary>
    public double this[ReplicaPhase phase] => _ms[(int)phase];

    /// <summary>Adds <paramref name="ms"/> milliseconds to <paramref name="phase"/>.</summary>
    public void AddMs(ReplicaPhase phase, double ms) => _ms[(int)phase] += ms;

    /// <summary>Milliseconds from <paramref name="start"/> to <paramref name="end"/> (two <see cref="Mark"/>s).</summary>
    public static double Ms(long start, long end) => Stopwatch.GetElapsedTime(start, end).TotalMilliseconds;

    /// <summary>The phases since the last call (serialise is the caller's: 0 here; ring is the device collective's, the
    /// gRPC ring's is the caller's too); the counters restart.</summary>
    public ReplicaTimes Take()
    {
        var times = new ReplicaTimes(this[ReplicaPhase.Augment], this[ReplicaPhase.Forward], this[ReplicaPhase.Reforward], this[ReplicaPhase.Backward],
            this[ReplicaPhase.Optimizer], 0, this[ReplicaPhase.Collective])
        {
            Unsynchronized = !Exact,
        };
        Array.Clear(_ms);
        return times;
    }
}
