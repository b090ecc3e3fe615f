using System.Diagnostics;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// The loop every gradient-trained stage shares: seeded epoch sampler, warm-up + cosine schedule, a step in a dispose
/// scope, metrics, progress, periodic atomic checkpoints, exact resume, and a checkpoint on cancellation.
/// Stages supply the step and the end-of-epoch evaluation.
/// </summary>
public abstract class Trainer : IDisposable
{
    protected Trainer(RunConfig config, ImageDataSet train, RunDirectory run, ITrainingObserver observer)
    {
        Config = config;
        Train = train;
        Run = run;
        Observer = observer;
        Device = new Device(config.Device);
        Sampler = new EpochSampler(train.Count, config.BatchSize, config.Seed);
        StepsPerEpoch = Sampler.BatchesPerEpoch;
        TotalSteps = (long)config.Epochs * StepsPerEpoch;
        Schedule = new LearningRateSchedule(config.Optimizer.PeakLearningRate(config.BatchSize), (long)Math.Round(config.WarmupEpochs * StepsPerEpoch), TotalSteps);
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

    protected abstract string StageName { get; }

    /// <summary>The step <see cref="TrainStep"/> is taking (0-based, counted over the whole run).</summary>
    protected long StepIndex { get; private set; }

    /// <summary>Checkpoint metadata: non-finite steps skipped so far in the run (faults.maxSkippedSteps counts over resumes).</summary>
    public const string SkippedStepsKey = "skipped_steps";

    private long _skipped;

    /// <summary>The network whose state_dict is checkpointed.</summary>
    protected abstract nn.Module Network { get; }

    protected abstract MomentumOptimizer Optimizer { get; }

    /// <summary>One optimiser step on these images; returns the loss, any per-step metrics, and why the step was not
    /// applied (a non-finite loss or gradient), or null when it was. Metrics named time_* (the step's time breakdown,
    /// <see cref="StepTimes.ToMetrics"/>) are averaged over the steps since the last "step" record.</summary>
    protected abstract (double Loss, Dictionary<string, double> Metrics, string? NotApplied) TrainStep(long[] indices, int epoch, double learningRate);

    /// <summary>Evaluation after an epoch (kNN, test accuracy); empty when nothing is due.</summary>
    protected abstract Dictionary<string, double> EndOfEpoch(int epoch, bool last);

    public StageResult Execute(Checkpoint? resume = null, long? stopAfterStep = null, CancellationToken cancel = default)
    {
        long start = 0;
        if (resume is not null)
        {
            Restore(resume);
            start = resume.Step;
            // the skipped-step budget is the run's, not the process's (older checkpoints have no count: 0)
            if (resume.Extra.TryGetValue(SkippedStepsKey, out string? count)
                && long.TryParse(count, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long before) && before >= 0)
                _skipped = before;
            Observer.Message($"resuming {StageName} at step {start} of {TotalSteps} (epoch {start / StepsPerEpoch})");
        }
        BeforeFirstStep();
        using var metrics = new MetricsLog(Run);
        var finals = new Dictionary<string, double>();
        Observer.Started(StageName, start, TotalSteps);
        var clock = Stopwatch.StartNew();
        long[] order = [];
        int orderEpoch = -1;
        string? lastCheckpoint = null;
        long viewsPerStep = ViewsPerImage * (long)Config.BatchSize;
        long step = start;
        var times = new Dictionary<string, double>(); // time_* summed over the applied steps since the last "step" record
        long timedSteps = 0;
        for (; step < TotalSteps; step++)
        {
            if (cancel.IsCancellationRequested || (stopAfterStep is long stop && step >= stop))
            {
                lastCheckpoint = SaveCheckpoint(step);
                Observer.Message(cancel.IsCancellationRequested ? $"stopped at step {step}; checkpoint {lastCheckpoint}" : $"paused at step {step}");
                Observer.Finished();
                return new StageResult(Run.Path, lastCheckpoint, finals, Completed: false);
            }
            int epoch = (int)(step / StepsPerEpoch), batch = (int)(step % StepsPerEpoch);
            if (epoch != orderEpoch)
            {
                order = Sampler.Permutation(epoch);
                orderEpoch = epoch;
            }
            double lr = Schedule.At(step);
            StepIndex = step;
            double loss;
            Dictionary<string, double> stepMetrics;
            string? notApplied;
            try
            {
                (loss, stepMetrics, notApplied) = TrainStep(order.AsSpan(batch * Config.BatchSize, Config.BatchSize).ToArray(), epoch, lr);
            }
            catch (ReplicaLostException lost) when (CanCheckpointAfterLoss)
            {
                // the run stops (fail-fast, or too few workers): the survivors' state is the run's, keep it
                string saved;
                try
                {
                    saved = SaveCheckpoint(lost.StepApplied ? step + 1 : step);
                }
                catch (Exception e) when (e is ReplicaLostException or IOException)
                {
                    throw new ReplicaLostException($"{lost.Message}; no checkpoint could be taken from the survivors ({e.Message}); last checkpoint: {Run.LatestCheckpoint() ?? "none"}", lost);
                }
                throw new ReplicaLostException($"{lost.Message}; checkpoint {saved} (continue with --resume)", lost) { StepApplied = lost.StepApplied };
            }
            if (notApplied is not null)
            {
                _skipped++;
                if (Config.Faults.NonFinite == NonFinitePolicy.Stop || _skipped > Config.Faults.MaxSkippedSteps)
                {
                    throw new TrainingDivergedException($"{StageName}: {notApplied} at step {step} (epoch {epoch}); the step was not applied"
                        + (Config.Faults.NonFinite == NonFinitePolicy.Stop ? " (faults.nonFinite is stop). " : $"; {_skipped} skipped steps, over faults.maxSkippedSteps ({Config.Faults.MaxSkippedSteps}). ")
                        + $"Last checkpoint: {Run.LatestCheckpoint() ?? "none"}. Lower the learning rate or check the data.");
                }
                Observer.Message($"step {step} skipped: {notApplied}; the weights are unchanged ({_skipped} of at most {Config.Faults.MaxSkippedSteps} skipped steps)");
                Log(metrics, "skip", step + 1, new Dictionary<string, double> { ["skipped_steps"] = _skipped }, new Dictionary<string, string> { ["stage"] = StageName, ["reason"] = notApplied });
            }
            else
            {
                double rate = viewsPerStep * (step - start + 1) / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                Observer.Step(new StepReport(step + 1, TotalSteps, epoch, loss, lr, rate, clock.Elapsed, start));
                foreach (var (k, v) in stepMetrics)
                    if (k.StartsWith("time_", StringComparison.Ordinal)) times[k] = times.GetValueOrDefault(k) + v;
                timedSteps++;
                if ((step + 1) % Config.LogEverySteps == 0 || step == start)
                {
                    foreach (var (k, v) in times) stepMetrics[k] = v / timedSteps;
                    if (times.Count > 0) stepMetrics["timed_steps"] = timedSteps;
                    times.Clear();
                    timedSteps = 0;
                    stepMetrics["loss"] = loss;
                    stepMetrics["lr"] = lr;
                    stepMetrics["views_per_second"] = rate;
                    stepMetrics["skipped_steps"] = _skipped;
                    Log(metrics, "step", step + 1, stepMetrics, new Dictionary<string, string> { ["stage"] = StageName });
                }
            }
            if (Config.CheckpointEverySteps > 0 && (step + 1) % Config.CheckpointEverySteps == 0 && step + 1 < TotalSteps)
            {
                try
                {
                    lastCheckpoint = SaveCheckpoint(step + 1);
                }
                catch (CheckpointWriteException e)
                {
                    // the run's state is safe in memory: go on, and try again at the next checkpoint
                    Observer.Message($"warning: {e.Message}; training goes on and tries again at step {step + 1 + Config.CheckpointEverySteps}");
                }
            }
            if (batch == StepsPerEpoch - 1)
            {
                var evaluation = EndOfEpoch(epoch, last: step + 1 == TotalSteps);
                evaluation["epoch"] = epoch + 1;
                foreach (var (k, v) in evaluation) finals[k] = v;
                Log(metrics, "epoch", step + 1, evaluation, new Dictionary<string, string> { ["stage"] = StageName });
                if (evaluation.Count > 1)
                    Observer.Message($"epoch {epoch + 1}/{Config.Epochs}: " + string.Join(", ", evaluation.Where(kv => kv.Key != "epoch").Select(kv => $"{kv.Key} {kv.Value:F4}")));
            }
        }
        lastCheckpoint = SaveCheckpoint(step);
        Observer.Finished();
        return new StageResult(Run.Path, lastCheckpoint, finals, Completed: true);
    }

    /// <summary>
    /// Writes a metrics record after step <paramref name="stepsDone"/>; when the disk refuses it, the run stops with a
    /// final checkpoint where one can still be written, and a message that names the file.
    /// </summary>
    private void Log(MetricsLog metrics, string kind, long stepsDone, IReadOnlyDictionary<string, double> values, IReadOnlyDictionary<string, string> labels)
    {
        try
        {
            metrics.Write(kind, stepsDone, values, labels);
        }
        catch (RunOutputException e)
        {
            string outcome;
            try
            {
                outcome = $"the run stopped after step {stepsDone} with a final checkpoint {SaveCheckpoint(stepsDone)}; free some space, then continue with --resume {Run.Path}";
            }
            catch (CheckpointWriteException c)
            {
                outcome = $"the run stopped after step {stepsDone}; no final checkpoint either: {c.Message}";
            }
            throw new RunOutputException($"{e.Message}; {outcome}", e.InnerException ?? e) { Path = e.Path };
        }
    }

    /// <summary>Whether a checkpoint can still be written when a lost replica stops the run.</summary>
    protected virtual bool CanCheckpointAfterLoss => false;

    /// <summary>2 for contrastive stages (two views per image), 1 for classifiers.</summary>
    protected virtual int ViewsPerImage => 1;

    /// <summary>Called once before the loop, after any resume: replicas elsewhere receive the starting state here.</summary>
    protected virtual void BeforeFirstStep()
    {
    }

    /// <summary>Called before <see cref="Network"/> and <see cref="Optimizer"/> are read (checkpoints): replicas elsewhere send theirs here.</summary>
    protected virtual void BeforeReadingState()
    {
    }

    private string SaveCheckpoint(long step)
    {
        BeforeReadingState();
        string path = Run.CheckpointPath(step);
        try
        {
            Checkpoint.Save(path, step, StageName, RunConfigLoader.Serialize(Config),
                Network.state_dict().Select(kv => (kv.Key, kv.Value)), Optimizer.State(),
                new Dictionary<string, string> { [SkippedStepsKey] = _skipped.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointWriteException($"could not write checkpoint {path}: {e.Message} (disk full? no permission?); "
                + $"the previous checkpoint is intact: {Run.LatestCheckpoint() ?? "none yet"}", e);
        }
        Run.PruneCheckpoints(Config.KeepCheckpoints); // only once the new one is safely written
        return path;
    }

    private void Restore(Checkpoint checkpoint)
    {
        if (checkpoint.Stage != StageName) throw new InvalidDataException($"the checkpoint is from stage {checkpoint.Stage}, this run is {StageName}");
        var state = Network.state_dict();
        // every name, shape and dtype first: copy_ would broadcast a [1] tensor into [8] silently (and every later
        // checkpoint would carry it), or fail in native code for another width
        var mismatches = StateDictCheck.Compare(state, checkpoint.Model, checkTypes: true, allowExtra: false);
        if (mismatches.Count > 0)
        {
            throw new InvalidDataException($"checkpoint {checkpoint.Source ?? ""} does not fit this model ({mismatches.Count} tensor(s) differ): "
                + StateDictCheck.Describe(mismatches, Checkpoint.ModelPrefix)
                + ". Was it written with another model.width, projection size or data set? Resume with the run's own config.json, without --set model.*");
        }
        Optimizer.LoadState(checkpoint.Optimizer); // checks names and shapes before it changes anything
        using (no_grad())
        {
            foreach (var (name, target) in state) target.copy_(checkpoint.Model[name]);
        }
    }

    public abstract void Dispose();
}
