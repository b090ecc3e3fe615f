using System.Text.Json;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Experiments;
using SimClr.Core.Stages;
using SimClr.Core.Tests.Stages;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Experiments;

/// <summary>simclr experiment's cells on tiny runs: finished cells skipped, an interrupted cell resumed, the report
/// from partial results, and a cell run with other values refused.</summary>
public sealed class ExperimentTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-experiment-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Writes the stage configs and an experiment file: pre-training (2 epochs, 8 steps, checkpoints every 2),
    /// fractions 25% (seeds 1, 2) and 100% (seed 1), methods finetune, supervised and knn-eval.</summary>
    private string Experiment(string name, string[]? methods = null, string[]? pretrainSet = null, double[]? fractions = null)
    {
        void WriteConfig(string file, RunConfig config) => File.WriteAllText(Path.Combine(_folder, file), RunConfigLoader.Serialize(config with { RunName = null, RunsFolder = "runs" }));
        WriteConfig("pretrain.json", TinyRuns.Config(Stage.Pretrain, "runs", "x") with { Epochs = 2, KnnEveryEpochs = 1, CheckpointEverySteps = 2 });
        WriteConfig("finetune.json", TinyRuns.Config(Stage.Finetune, "runs", "x") with { Epochs = 1, CheckpointEverySteps = 2 });
        WriteConfig("knn.json", TinyRuns.Config(Stage.KnnEval, "runs", "x") with { KnnK = 5 });
        var all = new Dictionary<string, object>
        {
            ["finetune"] = new { name = "finetune", title = "SimCLR + fine-tune", stage = "finetune", config = "finetune.json", pretrained = true },
            ["supervised"] = new { name = "supervised", title = "from scratch", stage = "supervised", config = "finetune.json" },
            ["knn"] = new { name = "knn", title = "SimCLR + kNN", stage = "knn-eval", config = "knn.json", pretrained = true },
        };
        var spec = new
        {
            description = "tiny",
            name,
            runsFolder = Path.Combine(_folder, "runs"),
            pretrain = new { config = "pretrain.json", set = pretrainSet ?? [] },
            labelFractions = (fractions ?? [0.25, 1.0]).Select(f => new { fraction = f, seeds = f < 1 ? new[] { 1UL, 2UL } : [1UL], schedule = f < 1 ? new[] { "batchSize=8" } : [] }),
            methods = (methods ?? ["finetune", "supervised", "knn"]).Select(m => all[m]),
        };
        string path = Path.Combine(_folder, name + ".json");
        File.WriteAllText(path, JsonSerializer.Serialize(spec));
        return path;
    }

    private static StageResult Execute(RunConfig config, RunDirectory run, string? checkpoint, CancellationToken cancel, long? stopAfterStep = null) =>
        StageRunner.RunAsync(config, run, SilentObserver.Instance, checkpoint, stopAfterStep, cancel).GetAwaiter().GetResult();

    [Fact]
    public void Every_cell_runs_once_and_a_second_run_skips_the_finished_ones()
    {
        var plan = ExperimentPlan.Load(Experiment("all"));
        Assert.Equal(1 + 3 * 3, plan.Cells.Count); // pretrain + (25% x 2 seeds + 100% x 1) x 3 methods
        var started = new List<string>();
        var log = new List<string>();
        var outcome = new ExperimentRunner(plan, (config, run, checkpoint, cancel) =>
        {
            started.Add(config.RunName!);
            return Execute(config, run, checkpoint, cancel);
        }, log.Add).Run();
        Assert.Equal(new ExperimentOutcome(true, 10, 0, 0), outcome);
        Assert.Equal(plan.Cells.Select(c => c.Id), started);
        var pretrain = CellRecord.TryRead(plan.PretrainCell!.Folder)!;
        Assert.EndsWith("step-00000008.safetensors", pretrain.Checkpoint);
        foreach (var cell in plan.Cells)
        {
            var record = CellRecord.TryRead(cell.Folder);
            Assert.NotNull(record);
            Assert.True(record.Seconds > 0);
            if (!cell.IsPretrain) Assert.InRange(record.Metrics["test_accuracy"], 0, 1);
            var config = RunConfigLoader.Load(Path.Combine(cell.Folder, "config.json"));
            Assert.Equal(cell.Method?.Pretrained == true ? pretrain.Checkpoint : null, config.Pretrained);
            if (!cell.IsPretrain)
            {
                Assert.Equal(cell.Fraction, config.LabelFraction);
                Assert.Equal(cell.Seed, config.Seed);
            }
        }
        // the schedule of a fraction reaches the trained methods only, and both of them
        Assert.Equal(8, RunConfigLoader.Load(Path.Combine(plan.Folder, "finetune-25pct-seed2", "config.json")).BatchSize);
        Assert.Equal(8, RunConfigLoader.Load(Path.Combine(plan.Folder, "supervised-25pct-seed2", "config.json")).BatchSize);
        Assert.Equal(16, RunConfigLoader.Load(Path.Combine(plan.Folder, "knn-25pct-seed2", "config.json")).BatchSize);

        started.Clear();
        outcome = new ExperimentRunner(plan, (config, run, checkpoint, cancel) =>
        {
            started.Add(config.RunName!);
            return Execute(config, run, checkpoint, cancel);
        }, log.Add).Run();
        Assert.Equal(new ExperimentOutcome(true, 0, 10, 0), outcome);
        Assert.Empty(started);
        Assert.Equal(10, log.Count(l => l.EndsWith("; skipped", StringComparison.Ordinal)));

        var report = ExperimentReport.Read(plan);
        Assert.All(report.Cells, c => Assert.True(c.Complete));
        var finetune = report.Cell(plan.Spec.Methods[0], 0.25);
        Assert.Equal(2, finetune.Values.Count);
        Assert.True(double.IsFinite(finetune.StandardDeviation));
        Assert.Equal(2, report.PretrainCurve.Count);
        Assert.All(report.PretrainCurve, p => Assert.True(double.IsFinite(p.Loss) && double.IsFinite(p.Knn)));
        string table = report.MarkdownTable();
        Assert.Contains("| SimCLR + fine-tune |", table);
        Assert.Contains("25% labels", table);
        Assert.DoesNotContain(" of ", table);
    }

    [Fact]
    public void An_interrupted_cell_continues_from_its_checkpoint_and_ends_as_an_uninterrupted_one()
    {
        var straightPlan = ExperimentPlan.Load(Experiment("straight", methods: ["knn"], fractions: [1.0]));
        Assert.True(new ExperimentRunner(straightPlan, (c, r, k, t) => Execute(c, r, k, t), _ => { }).Run().Completed);

        var plan = ExperimentPlan.Load(Experiment("paused", methods: ["knn"], fractions: [1.0]));
        var first = new ExperimentRunner(plan, (c, r, k, t) => Execute(c, r, k, t, stopAfterStep: 3), _ => { }).Run();
        Assert.Equal(new ExperimentOutcome(false, 0, 0, 2), first);
        Assert.Null(CellRecord.TryRead(plan.PretrainCell!.Folder));
        Assert.False(Directory.Exists(plan.Cells[1].Folder)); // nothing after the interrupted cell ran

        var resumedFrom = new List<string?>();
        var second = new ExperimentRunner(plan, (c, r, k, t) =>
        {
            resumedFrom.Add(k is null ? null : Path.GetFileName(k));
            return Execute(c, r, k, t);
        }, _ => { }).Run();
        Assert.Equal(new ExperimentOutcome(true, 2, 0, 0), second);
        Assert.Equal(["step-00000003.safetensors", null], resumedFrom);
        var record = CellRecord.TryRead(plan.PretrainCell.Folder)!;
        Assert.Equal(2, record.Attempts);

        using var scope = NewDisposeScope();
        using var a = Checkpoint.Load(CellRecord.TryRead(straightPlan.PretrainCell!.Folder)!.Checkpoint!);
        using var b = Checkpoint.Load(record.Checkpoint!);
        foreach (var (name, tensor) in a.Model)
        {
            if (!tensor.is_floating_point()) continue;
            Assert.True(tensor.sub(b.Model[name]).abs().max().item<float>() <= 1e-6 * Math.Max(1, tensor.abs().max().item<float>()), name);
        }
        Assert.Equal(CellRecord.TryRead(straightPlan.Cells[1].Folder)!.Metrics["test_accuracy"], CellRecord.TryRead(plan.Cells[1].Folder)!.Metrics["test_accuracy"]);
    }

    [Fact]
    public void The_report_of_partial_results_shows_what_finished_and_marks_the_rest()
    {
        var plan = ExperimentPlan.Load(Experiment("partial"));
        using var stop = new CancellationTokenSource();
        int cells = 0;
        // stop after the pre-training and the first seed of 25% (finetune, supervised, knn): seed 2 and 100% are left
        var outcome = new ExperimentRunner(plan, (c, r, k, t) =>
        {
            var result = Execute(c, r, k, t);
            if (++cells == 4) stop.Cancel();
            return result;
        }, _ => { }).Run(stop.Token);
        Assert.Equal(new ExperimentOutcome(false, 4, 0, 6), outcome);

        var report = ExperimentReport.Read(plan);
        Assert.Equal(4, report.Finished);
        var quarter = report.Cell(plan.Spec.Methods[0], 0.25);
        Assert.Single(quarter.Values);
        Assert.False(quarter.Complete);
        Assert.True(double.IsNaN(quarter.StandardDeviation));
        Assert.Empty(report.Cell(plan.Spec.Methods[0], 1.0).Values);
        string table = report.MarkdownTable();
        Assert.Contains("(1 of 2)", table);
        Assert.Contains("| - |", table);
        string cellsTable = report.MarkdownCells();
        Assert.Contains("4 of 10 cells finished", cellsTable);
        Assert.Equal(6, cellsTable.Split('\n').Count(l => l.Contains("not finished", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_cell_run_with_other_values_than_the_experiment_now_gives_is_refused_naming_them()
    {
        string path = Experiment("changed", methods: ["knn"], fractions: [1.0]);
        Assert.True(new ExperimentRunner(ExperimentPlan.Load(path), (c, r, k, t) => Execute(c, r, k, t), _ => { }).Run().Completed);
        // a key added to the config since a cell ran (here: one taken out of its config.json) takes its default: not a change
        string written = Path.Combine(ExperimentPlan.Load(path).PretrainCell!.Folder, "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(written))!.AsObject();
        Assert.True(node.Remove("testEveryEpochs"));
        File.WriteAllText(written, node.ToJsonString());
        Assert.Equal(new ExperimentOutcome(true, 0, 2, 0), new ExperimentRunner(ExperimentPlan.Load(path), (c, r, k, t) => Execute(c, r, k, t), _ => { }).Run());

        path = Experiment("changed", methods: ["knn"], fractions: [1.0], pretrainSet: ["epochs=3"]);
        int ran = 0;
        var e = Assert.Throws<ConfigException>(() => new ExperimentRunner(ExperimentPlan.Load(path), (c, r, k, t) => { ran++; return Execute(c, r, k, t); }, _ => { }).Run());
        Assert.Contains("epochs: 2 -> 3", e.Message);
        Assert.Contains(Path.Combine("changed", "pretrain"), e.Message);
        Assert.Equal(0, ran);
    }

    [Fact]
    public void Mistakes_in_an_experiment_file_are_reported_together_before_anything_runs()
    {
        string path = Path.Combine(_folder, "bad.json");
        File.WriteAllText(path, """
            { "name": "bad", "labelFractions": [ { "fraction": 1.5, "seeds": [1, 1] } ],
              "methods": [ { "name": "finetune", "stage": "finetune", "config": "f.json" }, { "name": "lin", "stage": "linear-eval", "config": "f.json" } ],
              "plot": ["nope"] }
            """);
        var e = Assert.Throws<ConfigException>(() => ExperimentPlan.Load(path));
        Assert.Contains("fraction 1.5 must be in (0, 1]", e.Message);
        Assert.Contains("repeats a seed", e.Message);
        Assert.Contains("'finetune' is a finetune without pretrained: true", e.Message);
        Assert.Contains("'lin' (linear-eval) needs pretrained", e.Message);
        Assert.Contains("plot: 'nope'", e.Message);

        File.WriteAllText(path, """{ "name": "bad", "labelFractions": [ { "fraction": 0.5 } ], "methods": [ { "name": "s", "stage": "supervised", "config": "missing.json" } ], "extra": 1 }""");
        e = Assert.Throws<ConfigException>(() => ExperimentPlan.Load(path));
        Assert.Contains("extra", e.Message);

        Experiment("ok", methods: ["supervised"], fractions: [1.0]);
        File.WriteAllText(path, File.ReadAllText(Path.Combine(_folder, "ok.json")).Replace("finetune.json", "missing.json", StringComparison.Ordinal));
        e = Assert.Throws<ConfigException>(() => ExperimentPlan.Load(path));
        Assert.Contains("experiment cell supervised-100pct-seed1", e.Message);
        Assert.Contains("missing.json", e.Message);
    }
}
