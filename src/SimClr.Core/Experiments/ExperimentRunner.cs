using System.Diagnostics;
using System.Text.Json.Nodes;
using SimClr.Core.Config;
using SimClr.Core.Stages;

namespace SimClr.Core.Experiments;

/// <summary>Runs one cell's stage: in this process, with whatever progress display the caller has.</summary>
public delegate StageResult CellExecutor(RunConfig config, RunDirectory run, string? checkpoint, CancellationToken cancel);

/// <summary>How an experiment run ended: every cell finished, or it stopped (Ctrl-C, SIGTERM) with cells left.</summary>
public sealed record ExperimentOutcome(bool Completed, int Ran, int Skipped, int Left);

/// <summary>
/// Runs an experiment's cells in order. A cell with a cell.json is finished and skipped; a cell whose run directory
/// holds checkpoints continues from the newest intact one; any other leftover of a cell (an evaluation cut short, a
/// run stopped before its first checkpoint) is removed and the cell runs again. A cell's run directory written with
/// other values than the experiment now gives is refused, naming the values, rather than mixed into the results.
/// </summary>
public sealed class ExperimentRunner(ExperimentPlan plan, CellExecutor execute, Action<string> log)
{
    public ExperimentOutcome Run(CancellationToken cancel = default)
    {
        int ran = 0, skipped = 0;
        string? pretrained = null;
        var cells = plan.Cells;
        for (int i = 0; i < cells.Count; i++)
        {
            var cell = cells[i];
            string position = $"[{i + 1}/{cells.Count}]";
            if (cancel.IsCancellationRequested) return Stopped(ran, skipped, cells.Count - i, position);
            var config = plan.Config(cell, pretrained);
            CheckSameValues(cell, config);
            var record = CellRecord.TryRead(cell.Folder, log);
            if (record is not null)
            {
                skipped++;
                log($"{position} {cell.Id}: finished earlier ({Summary(record)}); skipped");
                if (cell.IsPretrain) pretrained = PretrainedCheckpoint(record, cell);
                continue;
            }
            string? checkpoint = Prepare(cell);
            var (seconds, attempts) = CellRecord.ReadPartial(cell.Folder);
            log($"{position} {cell.Id}: {cell.Describe()}: " + (checkpoint is null ? "starting" : $"resuming from {Path.GetFileName(checkpoint)}"));
            var run = checkpoint is null ? RunDirectory.Create(config) : RunDirectory.Open(cell.Folder);
            var clock = Stopwatch.StartNew();
            var result = execute(config, run, checkpoint, cancel);
            seconds += clock.Elapsed.TotalSeconds;
            attempts++;
            if (!result.Completed)
            {
                CellRecord.WritePartial(cell.Folder, seconds, attempts);
                return Stopped(ran, skipped, cells.Count - i, position);
            }
            record = new CellRecord
            {
                Id = cell.Id,
                Method = cell.Method?.Name ?? PretrainSpec.CellId,
                Stage = cell.Stage.Name(),
                Fraction = cell.Fraction,
                Seed = cell.Seed,
                Metrics = result.Metrics.Where(kv => double.IsFinite(kv.Value)).ToDictionary(kv => kv.Key, kv => kv.Value),
                Seconds = seconds,
                Attempts = attempts,
                Checkpoint = result.CheckpointPath,
                Finished = DateTimeOffset.UtcNow,
            };
            record.Write(cell.Folder);
            File.Delete(Path.Combine(cell.Folder, CellRecord.PartialFileName));
            ran++;
            log($"{position} {cell.Id}: done ({Summary(record)})");
            if (cell.IsPretrain) pretrained = PretrainedCheckpoint(record, cell);
        }
        return new ExperimentOutcome(true, ran, skipped, 0);
    }

    private ExperimentOutcome Stopped(int ran, int skipped, int left, string position)
    {
        log($"{position} stopped: {left} cell(s) left; run the same command again to continue");
        return new ExperimentOutcome(false, ran, skipped, left);
    }

    private static string PretrainedCheckpoint(CellRecord record, ExperimentCell cell)
    {
        if (record.Checkpoint is null || !File.Exists(record.Checkpoint))
            throw new ConfigException($"the pre-training finished, but its final checkpoint {record.Checkpoint ?? "(none recorded)"} is gone; "
                + $"remove {cell.Folder} to pre-train again (the cells that started from it should then be removed too)");
        return record.Checkpoint;
    }

    /// <summary>A cell's run directory written with other values than the experiment now gives is refused (finished
    /// or not): its results would be mixed into a table they do not belong to.</summary>
    private static void CheckSameValues(ExperimentCell cell, RunConfig config)
    {
        string configFile = Path.Combine(cell.Folder, "config.json");
        if (!File.Exists(configFile)) return;
        IReadOnlyList<string> differences;
        string written = File.ReadAllText(configFile);
        try
        {
            // read through today's loader: a key added since the cell ran takes its default, as the cell had it
            written = RunConfigLoader.Serialize(RunConfigLoader.Load(configFile));
        }
        catch (ConfigException)
        {
            // a key since removed or renamed: compared as written, the difference names it
        }
        try
        {
            differences = Differences(written, RunConfigLoader.Serialize(config));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ConfigException($"{configFile} cannot be read ({e.Message}); remove {cell.Folder} to run the cell again");
        }
        if (differences.Count > 0)
        {
            throw new ConfigException($"{cell.Folder} was run with other values than the experiment now gives ({string.Join("; ", differences)}). "
                + "Remove that folder to run the cell again with the new values, or restore the experiment's config.");
        }
    }

    /// <summary>The checkpoint an unfinished cell continues from, or null when it starts (again) from nothing: what an
    /// attempt without a checkpoint left (an evaluation cut short, a run stopped before its first checkpoint) is removed.</summary>
    private string? Prepare(ExperimentCell cell)
    {
        if (!Directory.Exists(cell.Folder)) return null;
        var run = RunDirectory.Open(cell.Folder, requireConfig: false);
        if (cell.Resumable && File.Exists(run.ConfigFile) && run.Checkpoints().Count > 0)
        {
            run.RemoveOrphanedTemporaries();
            return run.IntactCheckpoint(log);
        }
        log($"{cell.Id}: removing what an unfinished attempt left in {cell.Folder}");
        var (seconds, attempts) = CellRecord.ReadPartial(cell.Folder);
        Directory.Delete(cell.Folder, recursive: true);
        if (attempts > 0) CellRecord.WritePartial(cell.Folder, seconds, attempts);
        return null;
    }

    /// <summary>The values two resolved configs disagree on, as "key: old -> new".</summary>
    public static IReadOnlyList<string> Differences(string before, string after)
    {
        var a = Flatten(JsonNode.Parse(before));
        var b = Flatten(JsonNode.Parse(after));
        return a.Keys.Union(b.Keys).Order(StringComparer.Ordinal)
            .Where(k => a.GetValueOrDefault(k) != b.GetValueOrDefault(k))
            .Select(k => $"{k}: {a.GetValueOrDefault(k) ?? "(absent)"} -> {b.GetValueOrDefault(k) ?? "(absent)"}")
            .ToList();
    }

    private static Dictionary<string, string> Flatten(JsonNode? node)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        void Walk(JsonNode? n, string prefix)
        {
            if (n is JsonObject o)
                foreach (var (key, child) in o) Walk(child, prefix.Length == 0 ? key : $"{prefix}.{key}");
            else
                values[prefix] = n?.ToJsonString() ?? "null";
        }
        Walk(node, "");
        return values;
    }

    public static string Summary(CellRecord record)
    {
        string metric = record.Metrics.TryGetValue("test_accuracy", out double test) ? $"test {test * 100:F2}%"
            : record.Metrics.TryGetValue("knn_accuracy", out double knn) ? $"kNN {knn * 100:F2}%"
            : record.Metrics.TryGetValue("loss", out double loss) ? $"loss {loss:F4}" : "no metric";
        return $"{metric}, {ExperimentReport.Duration(record.Seconds)}" + (record.Attempts > 1 ? $" over {record.Attempts} attempts" : "");
    }
}
