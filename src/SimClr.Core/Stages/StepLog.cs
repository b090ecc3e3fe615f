using SimClr.Core.Step;

namespace SimClr.Core.Stages;

/// <summary>
/// A stage's records in metrics.jsonl (and TensorBoard): a "step" record every logEverySteps applied steps (and the
/// first), with the time_* breakdown (<see cref="StepTimes.ToMetrics"/>) averaged over the steps since the last one;
/// "skip" and "epoch" records. When the disk refuses a record the run stops, with a final checkpoint where one can
/// still be written (<paramref name="finalCheckpoint"/>) and a message that names the file.
/// </summary>
public sealed class StepLog(RunDirectory run, string stage, int logEverySteps, Func<long, string> finalCheckpoint) : IDisposable
{
    private readonly MetricsLog _metrics = new(run);
    private readonly Dictionary<string, double> _times = []; // time_* summed over the applied steps since the last "step" record
    private long _timedSteps;

    /// <summary>Records an applied step (done: <paramref name="stepsDone"/>) when one is due.</summary>
    public void Applied(long stepsDone, bool first, StepResult result, double learningRate, double viewsPerSecond, long skipped)
    {
        var values = result.Times?.ToMetrics() ?? [];
        foreach (var (k, v) in values)
            if (k.StartsWith("time_", StringComparison.Ordinal)) _times[k] = _times.GetValueOrDefault(k) + v;
        _timedSteps++;
        if (stepsDone % logEverySteps != 0 && !first) return;
        foreach (var (k, v) in _times) values[k] = v / _timedSteps;
        if (_times.Count > 0) values["timed_steps"] = _timedSteps;
        _times.Clear();
        _timedSteps = 0;
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
