using System.CommandLine;
using SimClr.Core.Config;
using SimClr.Core.Step;

namespace SimClr.Cli.Commands.Bench;

/// <summary>`simclr bench breakdown`: where a run's step time went, from the time_* metrics of its metrics.jsonl.</summary>
internal static class BreakdownBench
{
    public static Command Create()
    {
        var run = new Argument<string>("run") { Description = "a run directory, or its metrics.jsonl" };
        var skip = new Option<int>("--skip") { Description = "leave out the first N step records (warm-up: the first is step 1 alone)", DefaultValueFactory = _ => 1 };
        var command = new Command("breakdown", "Where a run's step time went, from the time_* metrics every run writes into metrics.jsonl: "
            + "coordinator (prepare, loss, reduce) and replicas (augment, forward, re-forward, backward, optimizer, serialize, transfer, idle).")
        {
            run, skip,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench breakdown", () => Run(r.GetValue(run)!, r.GetValue(skip))));
        return command;
    }

    private static int Run(string path, int skip)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "metrics.jsonl") : path;
        if (!File.Exists(file)) throw new ConfigException($"no {file}");
        var records = File.ReadLines(file).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == "step" && e.TryGetProperty("time_step_ms", out _)).ToList();
        if (records.Count > skip) records = records.Skip(skip).ToList();
        if (records.Count == 0) throw new ConfigException($"{file} has no step records with time_* metrics");
        // each record averages timed_steps steps: weight it by them
        double steps = records.Sum(e => e.GetProperty("timed_steps").GetDouble());
        double Mean(string key) => records.Sum(e => (e.TryGetProperty(key, out var v) ? v.GetDouble() : 0) * e.GetProperty("timed_steps").GetDouble()) / steps;
        double step = Mean("time_step_ms");
        var slowest = records.GroupBy(e => e.GetProperty("slowest_replica").GetDouble()).Select(g => (Replica: g.Key, Records: g.Count())).MaxBy(x => x.Records);
        Console.WriteLine($"{file}: {steps:F0} steps in {records.Count} record(s); mean step {step:F1} ms");
        Console.WriteLine();
        Console.WriteLine("| where | phase | mean ms/step | share of step | max over replicas, ms/step |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: |");
        var rows = new List<(string Where, string Phase, double Ms)>();
        foreach (string phase in StepTimes.CoordinatorPhases) rows.Add(("coordinator", phase, Mean($"time_{phase}_ms")));
        foreach (string phase in StepTimes.ReplicaPhases) rows.Add(("replica", phase, Mean($"time_{phase}_ms")));
        foreach (var (where, phase, ms) in rows)
        {
            string max = where == "replica" ? $"{Mean($"time_{phase}_max_ms"):F1}" : "";
            Console.WriteLine($"| {where} | {phase} | {ms:F1} | {ms / step:P1} | {max} |");
        }
        double sum = rows.Sum(r => r.Ms);
        Console.WriteLine($"| | **step** | **{step:F1}** | (parts add up to {sum:F1}) | compute {Mean("time_compute_max_ms"):F1} |");
        Console.WriteLine();
        var top = rows.Where(r => r.Phase is not "idle").MaxBy(r => r.Ms);
        Console.WriteLine($"largest part: {top.Where} {top.Phase} ({top.Ms / step:P0} of the step); replica idle {Mean("time_idle_ms") / step:P0}; "
            + $"slowest replica: rank {slowest.Replica:F0} (in {slowest.Records} of {records.Count} records)");
        return ExitCodes.Success;
    }
}
