using System.Diagnostics;
using SimClr.Core.Checkpoints;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// The loop every gradient-trained stage shares: seeded epoch sampler, warm-up + cosine schedule, one
/// <see cref="DataParallelStep"/> per batch (on this process's replica, or on the given worker endpoints), metrics,
/// progress, periodic atomic checkpoints, exact resume, a checkpoint on cancellation, and what a step that did not
/// apply means for the run. Stages supply the loss, what they take from each step, and the end-of-epoch evaluation.
/// </summary>
public abstract class Trainer : IDisposable
{
    private CheckpointKeeper? _keeper;
    private long _skipped;

    protected Trainer(RunConfig config, ImageDataSet train, RunDirectory run, ITrainingObserver observer, IStepLoss loss, IReadOnlyList<IReplicaEndpoint>? replicas)
    {
        Config = config;
        Train = train;
        Run = run;
        Observer = observer;
        bool remote = replicas is { Count: > 0 };
        var local = new Device(StageRunner.LocalDevice(config, remote)); // the loss's, and with workers this process's model's
        Device = remote ? local : new Device(config.Device);
        Sampler = new EpochSampler(train.Count, config.BatchSize, config.Seed);
        StepsPerEpoch = Sampler.BatchesPerEpoch;
        TotalSteps = (long)config.Epochs * StepsPerEpoch;
        Schedule = new LearningRateSchedule(config.Optimizer.PeakLearningRate(config.BatchSize), (long)Math.Round(config.WarmupEpochs * StepsPerEpoch), TotalSteps);
        Replica = ReplicaFactory.Build(config, train.Channels, train.Mean, train.Std, Device, train.ClassNames.Count);
        var self = new LocalReplicaEndpoint(Replica);
        StepRunner = new DataParallelStep(remote ? replicas! : [self], loss, config.Batching, config.Faults, observer.Message, config.Reduction, local,
            sharedStorage: config.Data.SharedStorage);
        Mirror = new ReplicaMirror(self, StepRunner.Group, remote);
        StepRunner.Group.Bring = Mirror.Bring;
        // fail now, not at the first step, when the batch cannot be split this way
        ShardPlan.Build(Enumerable.Range(0, config.BatchSize).Select(i => (long)i).ToArray(), StepRunner.Replicas.Count, config.Batching, loss.ViewsPerImage);
    }

    protected RunConfig Config { get; }

    protected ImageDataSet Train { get; }

    protected RunDirectory Run { get; }

    protected ITrainingObserver Observer { get; }

    protected Device Device { get; }

    protected EpochSampler Sampler { get; }

    public int StepsPerEpoch { get; }

    public long TotalSteps { get; }

    public LearningRateSchedule Schedule { get; }

    /// <summary>This process's replica: the whole model in single-process runs, the reference copy in distributed ones
    /// (read it after <see cref="Mirror"/>.Pull()).</summary>
    protected ModelReplica Replica { get; }

    protected DataParallelStep StepRunner { get; }

    /// <summary>Keeps <see cref="Replica"/> in step with the workers'.</summary>
    protected ReplicaMirror Mirror { get; }

    protected abstract string StageName { get; }

    private CheckpointKeeper Keeper => _keeper ??= new CheckpointKeeper(Run, Config, StageName, Replica, Mirror.Pull);

    /// <summary>2 for contrastive stages (two views per image), 1 for classifiers.</summary>
    protected virtual int ViewsPerImage => 1;

    /// <summary>What the stage takes from an applied step (a classifier counts its correct answers).</summary>
    protected virtual void OnApplied(StepResult result)
    {
    }

    /// <summary>Evaluation after an epoch (kNN, test accuracy); empty when nothing is due.</summary>
    protected abstract Dictionary<string, double> EndOfEpoch(int epoch, bool last);

    public StageResult Execute(Checkpoint? resume = null, long? stopAfterStep = null, CancellationToken cancel = default)
    {
        long start = 0;
        if (resume is not null)
        {
            _skipped = Keeper.Restore(resume);
            start = resume.Step;
            Observer.Message($"resuming {StageName} at step {start} of {TotalSteps} (epoch {start / StepsPerEpoch})");
        }
        BeforeFirstStep();
        using var log = new StepLog(Run, StageName, Config.LogEverySteps, done => Keeper.Save(done, _skipped));
        var finals = new Dictionary<string, double>();
        Observer.Started(StageName, start, TotalSteps);
        var clock = Stopwatch.StartNew();
        long step = start;
        for (; step < TotalSteps; step++)
        {
            if (cancel.IsCancellationRequested || (stopAfterStep is long stop && step >= stop))
            {
                string saved = Keeper.Save(step, _skipped);
                Observer.Message(cancel.IsCancellationRequested ? $"stopped at step {step}; checkpoint {saved}" : $"paused at step {step}");
                Observer.Finished();
                return new StageResult(Run.Path, saved, finals, Completed: false);
            }
            int epoch = (int)(step / StepsPerEpoch);
            double lr = Schedule.At(step);
            StepResult result;
            using (var scope = NewDisposeScope()) result = StepRunner.Run(Train, Batch(step), epoch, step, lr, full: FullChecksumDue(step));
            if (result.Status == StepStatus.Applied) Applied(result, step, start, epoch, lr, clock.Elapsed, log);
            else if (result.Status == StepStatus.Skipped) Skipped(result.Reason!, step, epoch, log);
            else Stopped(result, step);
            CheckpointIfDue(step);
            if ((step + 1) % StepsPerEpoch == 0) EndEpoch(epoch, step, finals, log);
        }
        string last = Keeper.Save(step, _skipped);
        Observer.Finished();
        return new StageResult(Run.Path, last, finals, Completed: true);
    }

    private long[] _order = [];
    private int _orderEpoch = -1;

    /// <summary>The images of <paramref name="step"/>: its slice of its epoch's seeded permutation.</summary>
    private long[] Batch(long step)
    {
        int epoch = (int)(step / StepsPerEpoch), batch = (int)(step % StepsPerEpoch);
        if (epoch != _orderEpoch)
        {
            _order = Sampler.Permutation(epoch);
            _orderEpoch = epoch;
        }
        return _order.AsSpan(batch * Config.BatchSize, Config.BatchSize).ToArray();
    }

    private void Applied(StepResult result, long step, long start, int epoch, double lr, TimeSpan elapsed, StepLog log)
    {
        Mirror.Applied();
        OnApplied(result);
        double rate = ViewsPerImage * (long)Config.BatchSize * (step - start + 1) / Math.Max(1e-9, elapsed.TotalSeconds);
        Observer.Step(new StepReport(step + 1, TotalSteps, epoch, result.Loss, lr, rate, elapsed, start));
        log.Applied(step + 1, step == start, result, lr, rate, _skipped);
    }

    /// <summary>A step not applied (non-finite): counted against faults.maxSkippedSteps; the run stops past it, or at
    /// the first one under faults.nonFinite stop.</summary>
    private void Skipped(string reason, long step, int epoch, StepLog log)
    {
        _skipped++;
        var faults = Config.Faults;
        if (faults.NonFinite == NonFinitePolicy.Stop || _skipped > faults.MaxSkippedSteps)
        {
            throw new TrainingDivergedException($"{StageName}: {reason} at step {step} (epoch {epoch}); the step was not applied"
                + (faults.NonFinite == NonFinitePolicy.Stop ? " (faults.nonFinite is stop). " : $"; {_skipped} skipped steps, over faults.maxSkippedSteps ({faults.MaxSkippedSteps}). ")
                + $"Last checkpoint: {Keeper.Latest}. Lower the learning rate or check the data.");
        }
        Observer.Message($"step {step} skipped: {reason}; the weights are unchanged ({_skipped} of at most {faults.MaxSkippedSteps} skipped steps)");
        log.Skipped(step + 1, reason, _skipped);
    }

    /// <summary>The run cannot go on: a checkpoint from the survivors when there are any (lost workers), then the error.</summary>
    private void Stopped(StepResult result, long step)
    {
        if (!result.WorkersLost) throw new RingBrokenException($"{result.Reason} Last checkpoint: {Keeper.Latest}.");
        if (result.AppliedBeforeStop) Mirror.Applied();
        if (StepRunner.Replicas.Count == 0) throw new ReplicaLostException(result.Reason!);
        string saved;
        try
        {
            saved = Keeper.Save(result.AppliedBeforeStop ? step + 1 : step, _skipped);
        }
        catch (Exception e) when (e is ReplicaLostException or IOException)
        {
            throw new ReplicaLostException($"{result.Reason}; no checkpoint could be taken from the survivors ({e.Message}); last checkpoint: {Keeper.Latest}", e);
        }
        throw new ReplicaLostException($"{result.Reason}; checkpoint {saved} (continue with --resume)");
    }

    /// <summary>Whether the replicas compare the SHA-256 of their parameters after <paramref name="step"/> (every
    /// checksumEverySteps, before every checkpoint, after the last step), not their fingerprints.</summary>
    private bool FullChecksumDue(long step)
    {
        long done = step + 1;
        return done >= TotalSteps || (Config.ChecksumEverySteps > 0 && done % Config.ChecksumEverySteps == 0)
            || (Config.CheckpointEverySteps > 0 && done % Config.CheckpointEverySteps == 0);
    }

    private void CheckpointIfDue(long step)
    {
        if (Config.CheckpointEverySteps <= 0 || (step + 1) % Config.CheckpointEverySteps != 0 || step + 1 >= TotalSteps) return;
        try
        {
            Keeper.Save(step + 1, _skipped);
        }
        catch (CheckpointWriteException e)
        {
            // the run's state is safe in memory: go on, and try again at the next checkpoint
            Observer.Message($"warning: {e.Message}; training goes on and tries again at step {step + 1 + Config.CheckpointEverySteps}");
        }
    }

    private void EndEpoch(int epoch, long step, Dictionary<string, double> finals, StepLog log)
    {
        var evaluation = EndOfEpoch(epoch, last: step + 1 == TotalSteps);
        evaluation["epoch"] = epoch + 1;
        foreach (var (k, v) in evaluation) finals[k] = v;
        log.Epoch(step + 1, evaluation);
        if (evaluation.Count > 1)
            Observer.Message($"epoch {epoch + 1}/{Config.Epochs}: " + string.Join(", ", evaluation.Where(kv => kv.Key != "epoch").Select(kv => $"{kv.Key} {kv.Value:F4}")));
    }

    /// <summary>Before the loop, after any resume: says how steps are split, and sends the workers the starting state.</summary>
    private void BeforeFirstStep()
    {
        if (StepRunner.Groups > 1)
        {
            Observer.Message($"each step: {StepRunner.Groups} BatchNorm groups ({StepRunner.Mode.ToString().ToLowerInvariant()}) over {StepRunner.Replicas.Count} replica(s)"
                + (Mirror.Remote ? ", kept if workers are lost or rejoin" : ""));
        }
        if (!Mirror.Remote) return;
        if (StepRunner.Replicas.Count > 1)
        {
            Observer.Message(StepRunner.Reducer switch
            {
                NcclReducer => $"gradients: NCCL all-reduce between the {StepRunner.Replicas.Count} workers' GPUs ({StepRunner.Replicas[0].DeviceCollective}), none through this process",
                RingReducer => $"gradients: ring all-reduce between the {StepRunner.Replicas.Count} workers ({Config.Reduction.Precision.ToString().ToLowerInvariant()}), none through this process",
                _ => $"gradients: summed in this process (reduction.method {Config.Reduction.Method.ToString().ToLowerInvariant()})",
            });
        }
        Mirror.PushStart();
    }

    public void Dispose()
    {
        Replica.Dispose();
        StepRunner.Syncs.Dispose();
        GC.SuppressFinalize(this);
    }
}
