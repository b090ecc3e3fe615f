using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// One data-parallel step over N replicas (ARCHITECTURE.md, "one pre-training step"), the same code for one
/// in-process replica and for N gRPC workers, for SimCLR and for classifiers: plan the shards (<see cref="ShardPlan"/>),
/// have every replica augment and forward its views, gather the outputs into the global row order, compute the global
/// loss and its gradient here (<see cref="IStepLoss"/>), hand each replica its rows of the gradient, gather the local
/// parameter gradients, reduce them, and have every replica apply the same step; with N > 1 the replicas' parameter
/// checksums must agree.
///
/// The reduction is the SUM: the loss is one mean over the whole global batch, L(θ) = L(z_1(θ), ..., z_2B(θ)), so by
/// the chain rule dL/dθ = Σ_rows (dL/dz_row)(dz_row/dθ), and a shard's backward of its rows of dL/dz computes exactly
/// its part of that sum. Averaging would divide the gradient by N; the equivalence tests (1, 2, 4 workers, chunks) pin
/// this.
///
/// Faults (<see cref="FaultOptions"/>): a replica whose call fails with <see cref="ReplicaLostException"/> is dropped;
/// under the elastic policy a step lost before any replica applied it is redone over the survivors with the same
/// global batch, the same views and the same BN groups (the groups are fixed for the run and spread over the
/// survivors; partial gradients are summed exactly, see <see cref="Sum"/>), so the parameters come out bit-identical to
/// an undisturbed run's; a replica lost while applying leaves the survivors, which all applied
/// the same step, to go on. Under fail-fast, or below the minimum, the exception stops the run.
///
/// Reduction (<see cref="ReductionOptions"/>): when every replica is a worker that can take part, the workers sum their
/// gradients among themselves in a ring (<see cref="RingAllReduce"/>; backward and reduction are one call,
/// <see cref="IReplicaEndpoint.BackwardReduceAsync"/>), and the coordinator moves no gradient; otherwise they come here
/// and the sum goes back (the star). A ring call that fails makes the others stop at once; a ring broken with no
/// replica lost is retried (<see cref="RingAttempts"/> in a row at most).
/// </summary>
public sealed class DataParallelStep(IReadOnlyList<IReplicaEndpoint> replicas, IStepLoss loss, BatchingOptions batching, FaultOptions? faults = null,
    Action<string>? log = null, ReductionOptions? reduction = null)
{
    private readonly ReductionOptions _reduction = reduction ?? new ReductionOptions();
    private int _ringFailures; // rings broken in a row with no replica lost

    /// <summary>Rings that may break in a row (no replica lost) before the step gives up.</summary>
    public const int RingAttempts = 3;

    private readonly List<IReplicaEndpoint> _active = [.. replicas];
    private readonly List<IReplicaEndpoint> _lost = [];
    private readonly Dictionary<IReplicaEndpoint, int> _rank = replicas.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => x.i);
    private readonly FaultOptions _faults = faults ?? new FaultOptions();

    // The BN groups are fixed for the run (batching.groups, else the starting workers x chunks), so a step redone over
    // fewer workers, or taken by a rejoined one, forwards the same BN batches and sums the same gradient.
    private readonly BatchingOptions _batching = batching.Groups > 0 ? batching : batching with { Groups = replicas.Count * batching.Chunks, Chunks = 1 };

    /// <summary>The replicas still in the run, in replica order (replica 0 first).</summary>
    public IReadOnlyList<IReplicaEndpoint> Replicas => _active;

    /// <summary>Replicas lost during the run (disposed), which may come back through <see cref="Admit"/>.</summary>
    public IReadOnlyList<IReplicaEndpoint> Lost => _lost;

    /// <summary>Takes <paramref name="replacement"/> (already holding the replicas' state) in place of the lost
    /// <paramref name="lost"/>, at its old rank (so shards and the gradient sum keep their order): it gets shards from
    /// the next step on.</summary>
    public void Admit(IReplicaEndpoint lost, IReplicaEndpoint replacement)
    {
        if (!_lost.Remove(lost)) throw new ArgumentException($"{lost.Name} is not a lost replica", nameof(lost));
        _rank[replacement] = _rank[lost];
        _active.Add(replacement);
        _active.Sort((a, b) => _rank[a].CompareTo(_rank[b]));
    }

    /// <summary>The step's BatchNorm groups (forward passes over all replicas), fixed for the run.</summary>
    public int Groups => _batching.Groups;

    public BatchNormGroups Mode => ShardPlan.Resolve(_batching.BatchNorm, _batching.Groups, loss.ViewsPerImage);

    /// <summary>Runs a step on the images <paramref name="batch"/> of <paramref name="data"/>; a non-finite loss is returned without a step.</summary>
    public StepOutcome Run(ImageDataSet data, long[] batch, long epoch, long step, double learningRate, CancellationToken cancel = default)
    {
        while (true)
        {
            try
            {
                return RunOnce(data, batch, epoch, step, learningRate, cancel);
            }
            catch (ReplicaLostException lost) when (lost.Lost.Count > 0)
            {
                foreach (var replica in lost.Lost)
                {
                    _active.Remove(replica);
                    replica.Dispose();
                    _lost.Add(replica);
                }
                string who = string.Join(", ", lost.Lost.Select(r => r.Name));
                if (_faults.Policy == FaultPolicy.FailFast || _active.Count < _faults.MinWorkers)
                {
                    throw new ReplicaLostException($"lost {who} at step {step}: {lost.Message}; "
                        + (_faults.Policy == FaultPolicy.FailFast ? "faults.policy is fail-fast" : $"{_active.Count} worker(s) left, faults.minWorkers is {_faults.MinWorkers}"), lost)
                    {
                        StepApplied = lost.StepApplied,
                        Outcome = lost.Outcome,
                        BelowMinimum = _faults.Policy == FaultPolicy.Elastic,
                    };
                }
                if (lost.StepApplied)
                {
                    log?.Invoke($"lost {who} while applying step {step} ({lost.Message}); the {_active.Count} other(s) applied it and go on");
                    return lost.Outcome!;
                }
                log?.Invoke($"lost {who} at step {step} ({lost.Message}); redoing the step over {_active.Count} worker(s), same batch, views and BN groups");
            }
            catch (RingBrokenException broken)
            {
                if (++_ringFailures >= RingAttempts)
                {
                    throw new RingBrokenException($"the workers' ring all-reduce broke {RingAttempts} times in a row at step {step} with no worker lost "
                        + $"({broken.Message}). Every worker must reach the others at the addresses the coordinator uses; or set reduction.method to star.", broken);
                }
                log?.Invoke($"the ring all-reduce broke at step {step} ({broken.Message}); redoing the step");
            }
        }
    }

    /// <summary>Whether this step's gradients are summed by the workers' ring (else through the coordinator).</summary>
    public bool UsesRing
    {
        get
        {
            if (_reduction.Method == ReductionMethod.Star || Replicas.Count < 2) return false;
            bool all = Replicas.All(r => r.PeerAddress is not null);
            if (!all && _reduction.Method == ReductionMethod.Ring)
                throw new InvalidOperationException($"reduction.method is ring, but {Replicas.First(r => r.PeerAddress is null).Name} cannot take part in a ring (in-process replicas cannot)");
            return all;
        }
    }

    private StepOutcome RunOnce(ImageDataSet data, long[] batch, long epoch, long step, double learningRate, CancellationToken cancel)
    {
        var clock = new StepClock(Replicas);
        var plan = ShardPlan.Build(batch, Replicas.Count, _batching, loss.ViewsPerImage);
        var shards = plan.Select(rows =>
        {
            using var images = data.Batch(rows.Indices);
            return new ShardWork(step, epoch, rows, images.shape, images.bytes.ToArray());
        }).ToList();
        var projections = Wait(applying: false, clock.Phase(Replicas.Select((r, w) => (Func<Task<FloatBlock>>)(() => r.ForwardAsync(shards[w], cancel)))));
        for (int w = 0; w < plan.Count; w++)
        {
            var shape = projections[w].Shape;
            if (shape.Length != 2 || shape[0] != plan[w].Count || (w > 0 && shape[1] != projections[0].Shape[1]))
                throw new InvalidDataException($"{Replicas[w].Name} answered projections [{string.Join(", ", shape)}] for {plan[w].Count} views");
        }

        double value;
        Dictionary<string, double> metrics;
        FloatBlock[] slices;
        long lossStart = Stopwatch.GetTimestamp();
        using (var scope = NewDisposeScope())
        {
            var gathered = cat(projections.Select(ToTensor).ToList(), 0);
            var rows = tensor(plan.SelectMany(p => p.GlobalRows).Select(r => (long)r).ToArray());
            var z = zeros_like(gathered).index_copy_(0, rows, gathered); // the global row order the loss expects
            var (lossValue, gradient, stepMetrics) = loss.LossAndGradient(z, batch);
            value = lossValue;
            metrics = stepMetrics;
            if (!double.IsFinite(value)) return new StepOutcome(value, null, metrics) { NotApplied = $"the loss is {value}", Times = clock.Stop(Replicas) };
            var scattered = gradient.index_select(0, rows).to_type(ScalarType.Float32).contiguous();
            long offset = 0;
            slices = plan.Select(p =>
            {
                var slice = scattered.narrow(0, offset, p.Count).contiguous();
                offset += p.Count;
                return new FloatBlock(slice.shape, slice.bytes.ToArray());
            }).ToArray();
        }
        clock.LossMs = Stopwatch.GetElapsedTime(lossStart).TotalMilliseconds;

        bool single = Replicas.Count == 1;
        long bad = 0;
        byte[]? reduced = null;
        if (UsesRing)
        {
            // backward and the workers' ring in one call each; the sum stays on the workers for ApplyStep
            var ring = new RingPlan((ulong)Random.Shared.NextInt64(1, long.MaxValue), Replicas.Select(r => r.PeerAddress!).ToList(), _reduction.Precision,
                _reduction.PieceElements > 0 ? _reduction.PieceElements : RingAllReduce.DefaultPieceElements, _reduction.BucketBytes);
            using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var counts = WaitRing(clock.Phase(Replicas.Select((r, w) => (Func<Task<long>>)(() => r.BackwardReduceAsync(slices[w], ring, w, abort.Token))), abort), cancel);
            bad = counts.Sum();
        }
        else
        {
            var gradients = Wait(applying: false, clock.Phase(Replicas.Select((r, w) => (Func<Task<GradientBytes?>>)(() => r.BackwardAsync(slices[w], returnGradient: !single, cancel)))));
            long reduceStart = Stopwatch.GetTimestamp();
            reduced = single ? null : GradientSum.Sum(gradients!, Replicas.Select(r => r.Name).ToList(), out bad);
            clock.ReduceMs = Stopwatch.GetElapsedTime(reduceStart).TotalMilliseconds;
        }
        _ringFailures = 0;
        if (bad > 0)
            return new StepOutcome(value, null, metrics) { NotApplied = $"the summed gradient has {bad} non-finite value(s)", Times = clock.Stop(Replicas) };
        var calls = clock.Phase(Replicas.Select(r => (Func<Task<string?>>)(() => r.ApplyStepAsync(step, learningRate, reduced, checksum: !single, cancel))));
        var survivors = Replicas.ToList();
        string?[] checksums;
        try
        {
            checksums = Wait(applying: true, calls);
        }
        catch (NonFiniteGradientException e) when (single)
        {
            // a single replica's gradient never leaves it: the replica checked it and refused the step
            return new StepOutcome(value, null, metrics) { NotApplied = e.Message, Times = clock.Stop(Replicas) };
        }
        catch (ReplicaLostException lost) when (lost.Lost.Count < Replicas.Count)
        {
            // the others applied the step: check them, and hand Run the outcome with the lost ones to drop
            var applied = calls.Where(c => c.IsCompletedSuccessfully).Select(c => c.Result).ToList();
            Compare(applied, survivors.Where((_, w) => calls[w].IsCompletedSuccessfully).ToList(), step);
            throw new ReplicaLostException(lost.Message, lost) { Lost = lost.Lost, StepApplied = true, Outcome = new StepOutcome(value, applied[0], metrics) };
        }
        if (!single) Compare(checksums, survivors, step);
        return new StepOutcome(value, checksums[0], metrics) { Times = clock.Stop(Replicas) };
    }

    /// <summary>
    /// Times a step (<see cref="StepTimes"/>): each replica phase (forward, backward, apply) from its first call's start
    /// to its last call's end, each replica's calls within it, and the replicas' own accounts of their work; what the
    /// replica phases and the loss and reduction leave of the step's wall time is the coordinator's preparation.
    /// </summary>
    private sealed class StepClock
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly double[] _callsMs;
        private double _phasesMs;

        public StepClock(IReadOnlyList<IReplicaEndpoint> replicas)
        {
            _callsMs = new double[replicas.Count];
            foreach (var r in replicas) r.TakeTimes(); // drop what calls outside a step (state transfers, a failed attempt) left
        }

        public double LossMs { get; set; }

        public double ReduceMs { get; set; }

        /// <summary>Starts every replica's call (in replica order), timing each; the phase's time is added when the last ends.
        /// With <paramref name="abort"/>, the first call that fails cancels the others (a ring cannot finish without all).</summary>
        public List<Task<T>> Phase<T>(IEnumerable<Func<Task<T>>> calls, CancellationTokenSource? abort = null)
        {
            long start = Stopwatch.GetTimestamp();
            var tasks = calls.Select((call, w) => Timed(call, w, abort)).ToList();
            try
            {
                Task.WaitAll(tasks);
            }
            catch (AggregateException)
            {
                // the caller's Wait sorts the failures out
            }
            _phasesMs += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            return tasks;
        }

        private async Task<T> Timed<T>(Func<Task<T>> call, int w, CancellationTokenSource? abort)
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                return await Start(call);
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

        public StepTimes Stop(IReadOnlyList<IReplicaEndpoint> replicas)
        {
            double stepMs = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
            var own = replicas.Select(r => r.TakeTimes()).ToList();
            return new StepTimes(stepMs, Math.Max(0, stepMs - _phasesMs - LossMs - ReduceMs), LossMs, ReduceMs, own,
                own.Select((t, w) => Math.Max(0, _callsMs[w] - t.TotalMs)).ToList(),
                _callsMs.Select(c => Math.Max(0, _phasesMs - c)).ToList());
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

    private static void Compare(IReadOnlyList<string?> checksums, IReadOnlyList<IReplicaEndpoint> from, long step)
    {
        if (checksums.Distinct().Count() != 1)
            throw new ReplicaDivergenceException($"replicas diverged at step {step}: parameter checksums "
                + string.Join(", ", checksums.Select((c, w) => $"{from[w].Name} {c}")));
    }

    /// <summary>
    /// Waits for every call (so none is left running). Replicas whose call failed with <see cref="ReplicaLostException"/>
    /// are reported together in one; any other failure is rethrown as it is.
    /// </summary>
    private T[] Wait<T>(bool applying, List<Task<T>> calls)
    {
        try
        {
            Task.WaitAll(calls);
        }
        catch (AggregateException)
        {
            var other = calls.FirstOrDefault(c => (c.IsFaulted && c.Exception!.InnerException is not ReplicaLostException) || c.IsCanceled);
            other?.GetAwaiter().GetResult();
            var lost = calls.Select((c, w) => (c, w)).Where(x => x.c.IsFaulted).ToList();
            throw new ReplicaLostException(string.Join("; ", lost.Select(x => x.c.Exception!.InnerException!.Message)))
            {
                Lost = lost.Select(x => Replicas[x.w]).ToList(),
                StepApplied = applying,
            };
        }
        return calls.Select(c => c.Result).ToArray();
    }

    /// <summary>
    /// The ring phase's results. When a call failed the others were cancelled: the replicas whose own call failed as
    /// lost are reported in one <see cref="ReplicaLostException"/> (the step is redone over the rest); with none lost, a
    /// broken ring is a <see cref="RingBrokenException"/>; any other failure is rethrown as it is.
    /// </summary>
    private long[] WaitRing(List<Task<long>> calls, CancellationToken cancel)
    {
        if (calls.All(c => c.IsCompletedSuccessfully)) return calls.Select(c => c.Result).ToArray();
        cancel.ThrowIfCancellationRequested();
        var failed = calls.Select((c, w) => (Error: c.Exception?.InnerException, w)).Where(x => x.Error is not null).ToList();
        var other = failed.FirstOrDefault(x => x.Error is not (ReplicaLostException or RingBrokenException or OperationCanceledException));
        if (other.Error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(other.Error);
        var lost = failed.Where(x => x.Error is ReplicaLostException).ToList();
        if (lost.Count > 0)
            throw new ReplicaLostException(string.Join("; ", lost.Select(x => x.Error!.Message))) { Lost = lost.Select(x => Replicas[x.w]).ToList() };
        var broken = failed.Where(x => x.Error is RingBrokenException).Select(x => $"{Replicas[x.w].Name}: {x.Error!.Message}").ToList();
        throw new RingBrokenException(broken.Count > 0 ? string.Join("; ", broken) : "a ring call was cancelled");
    }

    private static Tensor ToTensor(FloatBlock block)
    {
        var t = empty(block.Shape, ScalarType.Float32);
        block.Data.CopyTo(t.bytes);
        return t;
    }
}
