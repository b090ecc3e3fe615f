using System.Diagnostics;

namespace SimClr.Distributed.Tests;

/// <summary>The built `simclr experiment` on a tiny comparison: the table, report.md and plots; a second run that
/// only skips; --report alone; a bad experiment file refused in one message.</summary>
public sealed class ExperimentCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-experiment-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Pre-training 2 epochs (8 steps) of an 8-channel net on 64 generated images; 50% (2 seeds) and 100%.</summary>
    private string Experiment()
    {
        File.WriteAllText(Path.Combine(_folder, "pre.json"), """
            { "description": "tiny pre-training", "stage": "pretrain", "threads": 1,
              "data": { "name": "synthetic-shapes", "syntheticTrain": 64, "syntheticTest": 16 },
              "model": { "width": 0.125, "projectionHidden": 16, "projectionDim": 8 },
              "optimizer": { "kind": "lars", "baseLearningRate": 1.0, "trustCoefficient": 0.02 },
              "epochs": 2, "batchSize": 16, "warmupEpochs": 1, "knnEveryEpochs": 1, "knnK": 5, "checkpointEverySteps": 2 }
            """);
        File.WriteAllText(Path.Combine(_folder, "fine.json"), """
            { "description": "tiny fine-tune", "stage": "finetune", "threads": 1,
              "data": { "name": "synthetic-shapes", "syntheticTrain": 64, "syntheticTest": 16 },
              "model": { "width": 0.125 }, "augment": { "jitterProbability": 0, "grayscaleProbability": 0 },
              "optimizer": { "kind": "sgd", "baseLearningRate": 0.05, "scaling": "none" },
              "epochs": 1, "batchSize": 8, "warmupEpochs": 0, "checkpointEverySteps": 2 }
            """);
        File.WriteAllText(Path.Combine(_folder, "knn.json"), """
            { "description": "tiny kNN", "stage": "knn-eval", "threads": 1,
              "data": { "name": "synthetic-shapes", "syntheticTrain": 64, "syntheticTest": 16 }, "model": { "width": 0.125 }, "knnK": 5 }
            """);
        string path = Path.Combine(_folder, "exp.json");
        File.WriteAllText(path, $$"""
            { "description": "tiny comparison", "name": "tiny", "runsFolder": "{{Path.Combine(_folder, "runs")}}",
              "pretrain": { "config": "pre.json" },
              "labelFractions": [ { "fraction": 0.5, "seeds": [1, 2], "schedule": ["epochs=2"] }, { "fraction": 1, "seeds": [1] } ],
              "methods": [
                { "name": "finetune", "title": "SimCLR + fine-tune", "stage": "finetune", "config": "fine.json", "pretrained": true },
                { "name": "scratch", "title": "from scratch", "stage": "supervised", "config": "fine.json" },
                { "name": "knn", "title": "SimCLR + kNN", "stage": "knn-eval", "config": "knn.json", "pretrained": true } ] }
            """);
        return path;
    }

    [Fact]
    public void Runs_the_cells_prints_the_table_writes_report_and_plots_and_a_second_run_only_skips()
    {
        string experiment = Experiment();
        var (code, output) = SimclrProcess.Run("experiment", "--config", experiment, "--plain");
        Assert.True(code == 0, output);
        Assert.Contains("[1/10] pretrain: pre-training: starting", output);
        Assert.Contains("[10/10] knn-100pct-seed1: done (test ", output);
        Assert.Contains("10 of 10 cells finished", output);
        Assert.Contains("| method | 50% labels | 100% labels |", output);
        Assert.Matches(@"\| SimCLR \+ fine-tune \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d \|", output);
        string report = Path.Combine(_folder, "runs", "tiny", "report");
        string markdown = File.ReadAllText(Path.Combine(report, "report.md"));
        Assert.Contains("| from scratch |", markdown);
        Assert.Contains("| epoch | loss | kNN accuracy |", markdown);
        Assert.Contains("10 of 10 cells finished", markdown);
        foreach (string png in new[] { "accuracy-vs-labels.png", "pretrain-loss.png", "pretrain-knn.png" })
            Assert.True(new FileInfo(Path.Combine(report, png)).Length > 1000, png);

        var clock = Stopwatch.StartNew();
        (code, output) = SimclrProcess.Run("experiment", "--config", experiment, "--plain");
        Assert.True(code == 0, output);
        Assert.Equal(10, output.Split('\n').Count(l => l.TrimEnd().EndsWith("; skipped", StringComparison.Ordinal)));
        Assert.DoesNotContain("starting", output);

        File.Delete(Path.Combine(report, "report.md"));
        (code, output) = SimclrProcess.Run("experiment", "--config", experiment, "--report", "--out", Path.Combine(_folder, "elsewhere"));
        Assert.True(code == 0, output);
        Assert.DoesNotContain("skipped", output);
        Assert.True(File.Exists(Path.Combine(_folder, "elsewhere", "report.md")));
        Assert.True(File.Exists(Path.Combine(_folder, "elsewhere", "accuracy-vs-labels.png")));
    }

    [Fact]
    public void A_bad_experiment_file_is_refused_in_one_message_with_exit_code_2()
    {
        string path = Path.Combine(_folder, "bad.json");
        File.WriteAllText(path, """{ "name": "bad", "labelFractions": [ { "fraction": 0 } ], "methods": [ { "name": "x", "stage": "pretrain", "config": "nope.json" } ] }""");
        var (code, output) = SimclrProcess.Run("experiment", "--config", path);
        Assert.True(code == 2, output);
        Assert.Contains("fraction 0 must be in (0, 1]", output);
        Assert.Contains("'x' has stage pretrain", output);
        Assert.DoesNotContain("   at ", output);
        Assert.False(Directory.Exists(Path.Combine(_folder, "runs")));
    }
}
