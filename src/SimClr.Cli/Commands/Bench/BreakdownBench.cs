using System.CommandLine;
using System.Text.Json;
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
        // (the replicas' phases, on CUDA, over the phase_timed_steps of them that were timed on the device)
        double Weight(JsonElement e, string key) => e.TryGetProperty(key, out var v) ? v.GetDouble() : 0;
        double PhaseWeight(JsonElement e) => e.TryGetProperty("phase_timed_steps", out var v) ? v.GetDouble() : Weight(e, "timed_steps");
        double steps = records.Sum(e => Weight(e, "timed_steps")), phaseSteps = records.Sum(PhaseWeight);
        double Mean(string key)
        {
            bool coordinator = key is "time_step_ms" || StepTimes.CoordinatorPhases.Any(p => key == $"time_{p}_ms");
            return records.Sum(e => Weight(e, key) * (coordinator ? Weight(e, "timed_steps") : PhaseWeight(e))) / Math.Max(1, coordinator ? steps : phaseSteps);
        }
        double step = Mean("time_step_ms");
        var slowest = records.Where(e => e.TryGetProperty("slowest_replica", out _)).GroupBy(e => e.GetProperty("slowest_replica").GetDouble())
            .Select(g => (Replica: g.Key, Records: g.Count())).DefaultIfEmpty().MaxBy(x => x.Records);
        Console.WriteLine($"{file}: {steps:F0} steps in {records.Count} record(s); mean step {step:F1} ms");
        if (phaseSteps < steps)
            Console.WriteLine($"replica phases timed on the device on {phaseSteps:F0} of them (timePhasesEverySteps); for parts that add up to the step, run with --set timePhasesEverySteps=1");
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
