using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// A stage whose steps run through <see cref="DataParallelStep"/>: on one in-process replica, or on the given replica
/// endpoints (gRPC workers). This process always keeps a replica of its own: it is the replicas' starting state
/// (pushed to them before the first step, after any resume), and before every checkpoint and evaluation it takes the
/// state of replica 0 (all replicas are bit-identical in their parameters; replica 0's BatchNorm running statistics
/// are kept, as PyTorch DDP broadcasts rank 0's).
/// </summary>
public abstract class ReplicatedTrainer : Trainer
{
    private readonly bool _remote;
    private readonly LocalReplicaEndpoint _self; // this process's replica, read and written like any other
    private long _steps;
    private long _pulledAt = -1;

    protected ReplicatedTrainer(RunConfig config, ImageDataSet train, RunDirectory run, ITrainingObserver observer, IStepLoss loss,
        IReadOnlyList<IReplicaEndpoint>? replicas)
        : base(config, train, run, observer)
    {
        Replica = ModelReplica.Build(config, train.Channels, train.Mean, train.Std, Device, train.ClassNames.Count);
        _self = new LocalReplicaEndpoint(Replica);
        _remote = replicas is { Count: > 0 };
        StepRunner = new DataParallelStep(_remote ? replicas! : [_self], loss, config.Batching, config.Faults, observer.Message, config.Reduction);
        // fail now, not at the first step, when the batch cannot be split this way
        ShardPlan.Build(Enumerable.Range(0, config.BatchSize).Select(i => (long)i).ToArray(), StepRunner.Replicas.Count, config.Batching, loss.ViewsPerImage);
    }

    /// <summary>This process's replica: the whole model in single-process runs, the reference copy in distributed ones.</summary>
    protected ModelReplica Replica { get; }

    protected DataParallelStep StepRunner { get; }

    protected override nn.Module Network => Replica.Network;

    protected override MomentumOptimizer Optimizer => Replica.Optimizer;

    protected override void BeforeFirstStep()
    {
        if (StepRunner.Groups > 1)
        {
            Observer.Message($"each step: {StepRunner.Groups} BatchNorm groups ({StepRunner.Mode.ToString().ToLowerInvariant()}) over {StepRunner.Replicas.Count} replica(s)"
                + (_remote ? ", kept if workers are lost or rejoin" : ""));
        }
        if (!_remote) return;
        if (StepRunner.Replicas.Count > 1)
        {
            Observer.Message(StepRunner.UsesRing
                ? $"gradients: ring all-reduce between the {StepRunner.Replicas.Count} workers ({Config.Reduction.Precision.ToString().ToLowerInvariant()}), none through this process"
                : $"gradients: summed in this process (reduction.method {Config.Reduction.Method.ToString().ToLowerInvariant()})");
        }
        PushState(StepRunner.Replicas, "the starting state");
        _pulledAt = _steps;
    }

    /// <summary>Loads this process's replica state into <paramref name="to"/>; each must report the same parameter checksum.</summary>
    private void PushState(IReadOnlyList<IReplicaEndpoint> to, string what)
    {
        var state = _self.SaveStateAsync(CancellationToken.None).GetAwaiter().GetResult();
        var checksums = Task.WhenAll(to.Select(r => r.LoadStateAsync(state, CancellationToken.None))).GetAwaiter().GetResult();
        string expected = Replica.Checksum();
        for (int w = 0; w < checksums.Length; w++)
        {
            if (checksums[w] != expected)
                throw new ReplicaDivergenceException($"{to[w].Name} loaded {what} but reports checksum {checksums[w]}, expected {expected}");
        }
    }

    /// <summary>Brings this process's replica up to date with replica 0 (a no-op in single-process runs).</summary>
    protected override void BeforeReadingState()
    {
        if (!_remote || _pulledAt == _steps) return;
        var state = StepRunner.Replicas[0].SaveStateAsync(CancellationToken.None).GetAwaiter().GetResult();
        _self.LoadStateAsync(state, CancellationToken.None).GetAwaiter().GetResult();
        _pulledAt = _steps;
    }

    private readonly Dictionary<IReplicaEndpoint, (DateTime Started, Task<IReplicaEndpoint?> Probe)> _probes = [];

    /// <summary>
    /// Lost workers are probed in the background (one probe at a time each, at most every faults.rejoinSeconds), so a
    /// hung worker never stalls a step; one that is back receives the full state (checked by checksum) and takes
    /// shards from this step on.
    /// </summary>
    private void TryRejoin()
    {
        if (StepRunner.Lost.Count == 0 || Config.Faults.RejoinSeconds <= 0) return;
        foreach (var lost in StepRunner.Lost.ToList())
        {
            if (!_probes.TryGetValue(lost, out var probe))
            {
                _probes[lost] = (DateTime.UtcNow, lost.TryReconnectAsync(CancellationToken.None));
                continue;
            }
            if (!probe.Probe.IsCompleted) continue;
            var fresh = probe.Probe.IsCompletedSuccessfully ? probe.Probe.Result : null;
            if (fresh is null)
            {
                if (DateTime.UtcNow - probe.Started >= TimeSpan.FromSeconds(Config.Faults.RejoinSeconds))
                    _probes[lost] = (DateTime.UtcNow, lost.TryReconnectAsync(CancellationToken.None));
                continue;
            }
            _probes.Remove(lost);
            try
            {
                BeforeReadingState(); // this process's replica now holds the survivors' state
                PushState([fresh], "the state");
                StepRunner.Admit(lost, fresh);
                Observer.Message($"{fresh.Name} rejoined at step {StepIndex}: {StepRunner.Replicas.Count} worker(s)");
            }
            catch (Exception e) when (e is ReplicaLostException or ReplicaDivergenceException)
            {
                Observer.Message($"{lost.Name} answered but could not rejoin: {e.Message}");
                fresh.Dispose();
            }
        }
    }

    /// <summary>One data-parallel step on these images.</summary>
    protected StepOutcome RunStep(long[] indices, int epoch, double learningRate)
    {
        TryRejoin();
        using var scope = NewDisposeScope();
        StepOutcome outcome;
        while (true)
        {
            try
            {
                outcome = StepRunner.Run(Train, indices, epoch, StepIndex, learningRate);
                break;
            }
            catch (ReplicaLostException lost) when (lost.BelowMinimum && StepRunner.Replicas.Count > 0 && WaitForJoiners())
            {
                if (!lost.StepApplied) continue; // redo it over the workers there are now
                outcome = lost.Outcome!;
                break;
            }
        }
        if (outcome.NotApplied is null) _steps++;
        return outcome;
    }

    /// <summary>Below faults.minWorkers: probes the lost workers for up to faults.joinWaitSeconds; true once enough are back.</summary>
    private bool WaitForJoiners()
    {
        var faults = Config.Faults;
        if (faults.JoinWaitSeconds <= 0 || faults.RejoinSeconds <= 0) return false;
        Observer.Message($"{StepRunner.Replicas.Count} worker(s) left, below faults.minWorkers ({faults.MinWorkers}): waiting up to {faults.JoinWaitSeconds:0.#} s for workers to rejoin");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(faults.JoinWaitSeconds);
        while (DateTime.UtcNow < until)
        {
            TryRejoin();
            if (StepRunner.Replicas.Count >= faults.MinWorkers) return true;
            Thread.Sleep(100);
        }
        Observer.Message($"no worker came back within {faults.JoinWaitSeconds:0.#} s (faults.joinWaitSeconds): stopping");
        return false;
    }

    /// <summary>Survivors hold the run's state: a checkpoint can be taken from them after a lost worker stops the run.</summary>
    protected override bool CanCheckpointAfterLoss => StepRunner.Replicas.Count > 0;

    public override void Dispose()
    {
        Replica.Dispose();
        GC.SuppressFinalize(this);
    }
}
