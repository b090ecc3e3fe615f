using System.Diagnostics;
using SimClr.Core.Replica;

namespace SimClr.Core.Step;

/// <summary>
/// Times one attempt at a step (<see cref="StepTimes"/>): each replica phase (forward, backward, apply) from its first
/// call's start to its last call's end, each replica's calls within it, and the replicas' own accounts of their work
/// (<see cref="Timed{T}"/>); what the replica phases and the loss and reduction leave of the step's wall time is the
/// coordinator's preparation. It sits beside the data path: the phases hand it their calls, it hands back their tasks.
/// </summary>
public sealed class StepClock
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly double[] _callsMs;
    private readonly ReplicaTimes[] _own;
    private double _phasesMs;

    public StepClock(int replicas)
    {
        _callsMs = new double[replicas];
        _own = Enumerable.Repeat(ReplicaTimes.None, replicas).ToArray();
    }

    public double LossMs { get; set; }

    public double ReduceMs { get; set; }

    /// <summary>Starts <paramref name="call"/> on every replica (in replica order), timing each, and waits for all; the
    /// phase's time is added when the last ends. With <paramref name="abort"/>, the first call that fails cancels the
    /// others (a ring cannot finish without all). Failures stay in the tasks for <see cref="PhaseResults"/> to sort out.</summary>
    public List<Task<Timed<T>>> Phase<T>(IReadOnlyList<IReplicaEndpoint> replicas, Func<IReplicaEndpoint, int, Task<Timed<T>>> call,
        CancellationTokenSource? abort = null)
    {
        long start = Stopwatch.GetTimestamp();
        var tasks = replicas.Select((r, w) => Run(() => call(r, w), w, abort)).ToList();
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException)
        {
            // the caller sorts the failures out
        }
        _phasesMs += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return tasks;
    }

    private async Task<Timed<T>> Run<T>(Func<Task<Timed<T>>> call, int w, CancellationTokenSource? abort)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            var result = await Start(call);
            _own[w] += result.Times;
            return result;
        }
        catch when (abort is not null)
        {
            await abort.CancelAsync();
            throw;
        }
        finally
        {
            _callsMs[w] += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
    }

    /// <summary>The call's task, also when it throws before returning one (in-process replicas run synchronously).</summary>
    private static Task<T> Start<T>(Func<Task<T>> call)
    {
        try
        {
            return call();
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }

    /// <summary>Where the attempt's time went, now.</summary>
    public StepTimes Stop()
    {
        double stepMs = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
        return new StepTimes(stepMs, Math.Max(0, stepMs - _phasesMs - LossMs - ReduceMs), LossMs, ReduceMs, [.. _own],
            _own.Select((t, w) => Math.Max(0, _callsMs[w] - t.TotalMs)).ToList(),
            _callsMs.Select(c => Math.Max(0, _phasesMs - c)).ToList());
    }
}
