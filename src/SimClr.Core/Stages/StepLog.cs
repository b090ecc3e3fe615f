using SimClr.Core.Step;

namespace SimClr.Core.Stages;

/// <summary>
/// A stage's records in metrics.jsonl (and TensorBoard): a "step" record every logEverySteps applied steps (and the
/// first), with the time_* breakdown (<see cref="StepTimes.ToMetrics"/>) averaged over the steps since the last one
/// that have it (on CUDA the replicas' phases are timed on one step in timePhasesEverySteps);
/// "skip" and "epoch" records. When the disk refuses a record the run stops, with a final checkpoint where one can
/// still be written (<paramref name="finalCheckpoint"/>) and a message that names the file.
/// </summary>
public sealed class StepLog(RunDirectory run, string stage, int logEverySteps, Func<long, string> finalCheckpoint) : IDisposable
{
    private readonly MetricsLog _metrics = new(run);
    private readonly Dictionary<string, (double Sum, long Steps)> _times = []; // time_* summed over the applied steps since the last "step" record

    /// <summary>Records an applied step (done: <paramref name="stepsDone"/>) when one is due.</summary>
    public void Applied(long stepsDone, bool first, StepResult result, double learningRate, double viewsPerSecond, long skipped)
    {
        var values = result.Times?.ToMetrics() ?? [];
        foreach (var (k, v) in values)
        {
            if (!k.StartsWith("time_", StringComparison.Ordinal)) continue;
            var (sum, steps) = _times.GetValueOrDefault(k);
            _times[k] = (sum + v, steps + 1);
        }
        if (stepsDone % logEverySteps != 0 && !first) return;
        foreach (var (k, (sum, steps)) in _times) values[k] = sum / steps;
        if (_times.TryGetValue("time_step_ms", out var timed)) values["timed_steps"] = timed.Steps;
        if (_times.TryGetValue("time_forward_ms", out var phases) && phases.Steps != timed.Steps) values["phase_timed_steps"] = phases.Steps;
        _times.Clear();
        values["loss"] = result.Loss;
        values["lr"] = learningRate;
        values["views_per_second"] = viewsPerSecond;
        values["skipped_steps"] = skipped;
        Write("step", stepsDone, values, new Dictionary<string, string> { ["stage"] = stage });
    }

    public void Skipped(long stepsDone, string reason, long skipped) =>
        Write("skip", stepsDone, new Dictionary<string, double> { ["skipped_steps"] = skipped }, new Dictionary<string, string> { ["stage"] = stage, ["reason"] = reason });

    public void Epoch(long stepsDone, IReadOnlyDictionary<string, double> evaluation) =>
        Write("epoch", stepsDone, evaluation, new Dictionary<string, string> { ["stage"] = stage });

    private void Write(string kind, long stepsDone, IReadOnlyDictionary<string, double> values, IReadOnlyDictionary<string, string> labels)
    {
        try
        {
            _metrics.Write(kind, stepsDone, values, labels);
        }
        catch (RunOutputException e)
        {
            string outcome;
            try
            {
                outcome = $"the run stopped after step {stepsDone} with a final checkpoint {finalCheckpoint(stepsDone)}; free some space, then continue with --resume {run.Path}";
            }
            catch (CheckpointWriteException c)
            {
                outcome = $"the run stopped after step {stepsDone}; no final checkpoint either: {c.Message}";
            }
            throw new RunOutputException($"{e.Message}; {outcome}", e.InnerException ?? e) { Path = e.Path };
        }
    }

    public void Dispose() => _metrics.Dispose();
}
