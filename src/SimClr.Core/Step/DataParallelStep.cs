using System.Diagnostics;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// One data-parallel step over N replicas (docs/ARCHITECTURE.md, "One step"), the same code for one in-process replica
/// and for N gRPC workers, for SimCLR and for classifiers: plan the shards (<see cref="ShardPlan"/>), have every
/// replica augment and forward its views, gather the outputs into the global row order, compute the global loss and
/// its gradient here (<see cref="IStepLoss"/>), hand each replica its rows of the gradient, have the replicas
/// back-propagate and sum their gradients (<see cref="IGradientReducer"/>), and have every replica apply the same step;
/// with N > 1 the replicas' parameter fingerprints (or, when asked, checksums) must agree.
///
/// Tensors stay where they are: an in-process replica's projections and its rows of dL/dz never leave their device,
/// the loss runs on <see cref="LossDevice"/>, and every read from a device goes through <see cref="Syncs"/> (the
/// coordinator's half) or the replica's own counter; what a step read is in its <see cref="StepTimes"/>.
///
/// The reduction is the SUM: the loss is one mean over the whole global batch, L(θ) = L(z_1(θ), ..., z_2B(θ)), so by
/// the chain rule dL/dθ = Σ_rows (dL/dz_row)(dz_row/dθ), and a shard's backward of its rows of dL/dz computes exactly
/// its part of that sum. Averaging would divide the gradient by N; the equivalence tests (1, 2, 4 workers, chunks) pin
/// this.
///
/// Faults: the replicas live in a <see cref="ReplicaGroup"/>; an attempt that loses replicas or breaks a ring is
/// handed to <see cref="StepRecovery"/>, which says redo, go on, wait or stop. A step redone over fewer workers keeps
/// the same global batch, views and BN groups (fixed for the run and spread over the survivors; partial gradients are
/// summed exactly), so the parameters come out bit-identical to an undisturbed run's. The step returns a
/// <see cref="StepResult"/>; it throws only for what no policy handles (a diverged replica, a bug).
/// </summary>
public sealed class DataParallelStep
{
    private readonly IStepLoss _loss;
    private readonly IGradientReducer _reducer;
    private readonly StepRecovery _recovery;
    private readonly Action<string>? _log;

    // The BN groups are fixed for the run (batching.groups, else the starting workers x chunks), so a step redone over
    // fewer workers, or taken by a rejoined one, forwards the same BN batches and sums the same gradient.
    private readonly BatchingOptions _batching;

    /// <param name="sharedStorage">Workers read their rows from their own copy of the data set (data.sharedStorage): a
    /// shard for a worker carries indices only. An in-process replica is always handed its images.</param>
    public DataParallelStep(IReadOnlyList<IReplicaEndpoint> replicas, IStepLoss loss, BatchingOptions batching, FaultOptions? faults = null,
        Action<string>? log = null, ReductionOptions? reduction = null, Device? lossDevice = null, bool sharedStorage = false)
    {
        _loss = loss;
        SharedStorage = sharedStorage;
        LossDevice = lossDevice ?? CPU;
        _log = log;
        _recovery = new StepRecovery(faults);
        Group = new ReplicaGroup(replicas, faults, log);
        _reducer = IGradientReducer.Choose(reduction ?? new ReductionOptions(), replicas);
        _batching = batching.Groups > 0 ? batching : batching with { Groups = replicas.Count * batching.Chunks, Chunks = 1 };
    }

    /// <summary>Whether workers read their images themselves (only indices travel).</summary>
    public bool SharedStorage { get; }

    /// <summary>Rings that may break in a row (no replica lost) before the step gives up.</summary>
    public const int RingAttempts = StepRecovery.RingAttempts;

    /// <summary>Where the global loss and dL/dz are computed (the coordinator's device).</summary>
    public Device LossDevice { get; }

    /// <summary>The coordinator's reads from <see cref="LossDevice"/> and its copies for transports.</summary>
    public HostSyncs Syncs { get; } = new();

    /// <summary>The run's replicas: active, lost, rejoining.</summary>
    public ReplicaGroup Group { get; }

    /// <summary>The replicas still in the run, in replica order (replica 0 first).</summary>
    public IReadOnlyList<IReplicaEndpoint> Replicas => Group.Active;

    /// <summary>The step's BatchNorm groups (forward passes over all replicas), fixed for the run.</summary>
    public int Groups => _batching.Groups;

    public BatchNormGroups Mode => ShardPlan.Resolve(_batching.BatchNorm, _batching.Groups, _loss.ViewsPerImage);

    /// <summary>Whether this step's gradients are summed by the workers' ring (else through the coordinator).</summary>
    public bool UsesRing => _reducer is RingReducer && Replicas.Count > 1;

    /// <summary>How this run's gradients are summed (<see cref="IGradientReducer.Choose"/>).</summary>
    public IGradientReducer Reducer => _reducer;

    /// <summary>Runs a step on the images <paramref name="batch"/> of <paramref name="data"/>, redoing, waiting or
    /// stopping as <see cref="StepRecovery"/> decides when replicas are lost.</summary>
    /// <paramref name="full"/>: the replicas prove they agree by the SHA-256 of their parameters, not their fingerprint
    /// (at checkpoints and every checksumEverySteps).
    public StepResult Run(ImageDataSet data, long[] batch, long epoch, long step, double learningRate, CancellationToken cancel = default, bool full = false)
    {
        Group.TryRejoin(step);
        while (true)
        {
            StepFailure failure;
            try
            {
                var result = Attempt(data, batch, epoch, step, learningRate, full, cancel);
                _recovery.Succeeded();
                return result;
            }
            catch (StepFailedException e)
            {
                failure = e.Failure;
            }
            Group.Drop(failure.Lost);
            var (next, message) = _recovery.Decide(failure, step, Replicas.Count);
            if (next == Recovery.Wait && Group.WaitForJoiners(step)) next = failure.Applied is null ? Recovery.Redo : Recovery.GoOn;
            else if (next == Recovery.Wait) next = Recovery.Stop;
            if (next == Recovery.Stop)
            {
                return new StepResult(StepStatus.Stopped, failure.Applied?.Loss ?? double.NaN, failure.Applied?.Checksum, failure.Applied?.Metrics ?? new Dictionary<string, double>())
                {
                    Reason = message,
                    AppliedBeforeStop = failure.Applied is not null,
                    WorkersLost = !failure.RingBroken,
                };
            }
            _log?.Invoke(message);
            if (next == Recovery.GoOn) return failure.Applied!;
        }
    }

    /// <summary>One attempt over the replicas there are now; a lost replica or broken ring ends it (<see cref="StepFailedException"/>).</summary>
    private StepResult Attempt(ImageDataSet data, long[] batch, long epoch, long step, double learningRate, bool full, CancellationToken cancel)
    {
        var replicas = Replicas.ToList();
        var clock = new StepClock(replicas.Count);
        var plan = ShardPlan.Build(batch, replicas.Count, _batching, _loss.ViewsPerImage);
        FloatBlock[] projections = [], dz = [];
        try
        {
            projections = Forward(replicas, plan, data, epoch, step, SharedStorage, clock, cancel);
            long lossStart = Stopwatch.GetTimestamp();
            (double value, var metrics, dz) = GlobalLoss(replicas, plan, projections, batch);
            clock.LossMs = Stopwatch.GetElapsedTime(lossStart).TotalMilliseconds;
            if (dz.Length == 0) return StepResult.Skip(value, metrics, $"the loss is {value}", Stop(clock));

            var reduction = _reducer.Reduce(replicas, dz, clock, cancel);
            if (reduction.NonFinite > 0)
                return StepResult.Skip(value, metrics, $"the summed gradient has {reduction.NonFinite} non-finite value(s)", Stop(clock));
            var agreement = replicas.Count == 1 ? Agreement.None : full ? Agreement.Full : Agreement.Fingerprint;
            return Apply(replicas, reduction.Gradient, step, learningRate, agreement, value, metrics, clock, cancel);
        }
        finally
        {
            foreach (var block in projections.Concat(dz)) block.Dispose();
        }
    }

    /// <summary>The clock's times with the coordinator's host synchronisations of the attempt in them.</summary>
    private StepTimes Stop(StepClock clock) => clock.Stop() with { CoordinatorSyncs = Syncs.Take() };

    /// <summary>Ships each replica its shard (raw uint8 images, or with shared storage none, indices, views, chunks) and
    /// gathers the projections.</summary>
    private static FloatBlock[] Forward(List<IReplicaEndpoint> replicas, IReadOnlyList<ShardRows> plan, ImageDataSet data, long epoch, long step,
        bool sharedStorage, StepClock clock, CancellationToken cancel)
    {
        var shards = plan.Select((rows, w) =>
        {
            if (sharedStorage && !replicas[w].InProcess) // the worker reads the rows itself: no pixels gathered or sent
                return new ShardWork(step, epoch, rows, [rows.Count, data.Channels, data.Height, data.Width], null);
            using var images = data.Batch(rows.Indices);
            return new ShardWork(step, epoch, rows, images.shape, images.bytes.ToArray());
        }).ToList();
        var calls = clock.Phase(replicas, (r, w) => r.ForwardAsync(shards[w], cancel));
        try
        {
            var projections = PhaseResults.Values(calls, replicas);
            for (int w = 0; w < plan.Count; w++)
            {
                var shape = projections[w].Shape;
                if (shape.Length != 2 || shape[0] != plan[w].Count || (w > 0 && shape[1] != projections[0].Shape[1]))
                    throw new InvalidDataException($"{replicas[w].Name} answered projections [{string.Join(", ", shape)}] for {plan[w].Count} views");
            }
            return projections;
        }
        catch
        {
            foreach (var call in calls.Where(c => c.IsCompletedSuccessfully)) call.Result.Value.Dispose();
            throw;
        }
    }

    /// <summary>The global loss over all replicas' outputs in the global row order (on <see cref="LossDevice"/>), its
    /// metrics, and each replica's rows of dL/dz, left on that device for an in-process replica and copied to the host
    /// for a worker (none when the loss is not finite). The loss and the metrics are read in one copy.</summary>
    private (double Loss, Dictionary<string, double> Metrics, FloatBlock[] Dz) GlobalLoss(List<IReplicaEndpoint> replicas, IReadOnlyList<ShardRows> plan,
        FloatBlock[] projections, long[] batch)
    {
        using var scope = NewDisposeScope();
        var gathered = cat(projections.Select(p => p.ToTensor(LossDevice)).ToList(), 0);
        var rows = tensor(plan.SelectMany(p => p.GlobalRows).Select(r => (long)r).ToArray(), device: LossDevice);
        var z = zeros_like(gathered).index_copy_(0, rows, gathered); // the global row order the loss expects
        var values = _loss.LossAndGradient(z, batch);
        var names = values.Counts.Keys.ToList();
        double[] read = Syncs.Values(stack([values.Loss.to_type(ScalarType.Float64), .. names.Select(n => values.Counts[n].to_type(ScalarType.Float64))]));
        var metrics = names.Select((n, i) => (n, read[i + 1])).ToDictionary(x => x.n, x => x.Item2);
        if (!double.IsFinite(read[0])) return (read[0], metrics, []);
        var scattered = values.Gradient.index_select(0, rows).to_type(ScalarType.Float32);
        long offset = 0;
        var slices = plan.Select((p, w) =>
        {
            var slice = FloatBlock.OnDevice(scattered.narrow(0, offset, p.Count), Syncs);
            offset += p.Count;
            return replicas[w].InProcess ? slice : slice.ToHost(); // a worker's rows go to the wire as bytes, copied here
        }).ToArray();
        return (read[0], metrics, slices);
    }

    /// <summary>Every replica applies the same gradient; their fingerprints or checksums must agree. Replicas lost while
    /// applying leave the others' result for <see cref="StepRecovery"/>.</summary>
    private StepResult Apply(List<IReplicaEndpoint> replicas, StepGradient gradient, long step, double learningRate, Agreement agreement, double loss,
        Dictionary<string, double> metrics, StepClock clock, CancellationToken cancel)
    {
        bool single = replicas.Count == 1;
        var calls = clock.Phase(replicas, (r, _) => r.ApplyStepAsync(step, learningRate, gradient, agreement, cancel));
        if (single && calls[0].Exception?.InnerException is NonFiniteGradientException refused)
            return StepResult.Skip(loss, metrics, refused.Message, Stop(clock)); // a single replica's gradient never leaves it: it checked it and refused
        var checksums = PhaseResults.Values(calls, replicas, applied: () =>
        {
            // the others applied the step: check them, and hand their result to the recovery with the lost ones to drop
            var survivors = Enumerable.Range(0, replicas.Count).Where(w => calls[w].IsCompletedSuccessfully).ToList();
            if (survivors.Count == 0) return null;
            var applied = survivors.Select(w => calls[w].Result.Value).ToList();
            Compare(applied, survivors.Select(w => replicas[w]).ToList(), step, agreement);
            return new StepResult(StepStatus.Applied, loss, applied[0], metrics);
        });
        if (!single) Compare(checksums, replicas, step, agreement);
        return new StepResult(StepStatus.Applied, loss, checksums[0], metrics) { Times = Stop(clock) };
    }

    private static void Compare(IReadOnlyList<string?> checksums, IReadOnlyList<IReplicaEndpoint> from, long step, Agreement agreement)
    {
        if (checksums.Distinct().Count() != 1)
            throw new ReplicaDivergenceException($"replicas diverged at step {step}: parameter {(agreement == Agreement.Fingerprint ? "fingerprints" : "checksums")} "
                + string.Join(", ", checksums.Select((c, w) => $"{from[w].Name} {c}")));
    }
}
