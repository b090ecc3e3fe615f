using System.CommandLine;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Stages;

namespace SimClr.Cli.Commands.Bench;

/// <summary>`simclr bench memory`: resident memory and live tensors over a tiny pre-training run (flat after warm-up, or a leak).</summary>
internal static class MemoryBench
{
    public static Command Create()
    {
        var steps = CommonOptions.Steps("pre-training steps of a tiny net", 300);
        var command = new Command("memory", "Resident memory and live tensors over a tiny pre-training run: flat after warm-up, or a leak.") { steps };
        command.SetAction(async r => await Run(r.GetValue(steps)));
        return command;
    }

    private static async Task<int> Run(int steps)
    {
        string runs = Path.Combine(Path.GetTempPath(), $"simclr-bench-memory-{Environment.ProcessId}");
        var config = new RunConfig
        {
            Stage = Stage.Pretrain,
            Threads = 1,
            Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 64, SyntheticTest: 8),
            Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
            Optimizer = new OptimizerOptions { BaseLearningRate = 1.0, Scaling = LearningRateScaling.None },
            Epochs = steps / 8 + 1,
            BatchSize = 8,
            WarmupEpochs = 1,
            KnnEveryEpochs = 0,
            CheckpointEverySteps = 0,
            LogEverySteps = 100,
            RunsFolder = runs,
            RunName = "memory",
        };
        var probe = new MemoryProbe(Math.Max(1, steps / 6));
        try
        {
            await StageRunner.RunAsync(config, RunDirectory.Create(config), probe, stopAfterStep: steps + 1);
        }
        finally
        {
            Directory.Delete(runs, recursive: true);
        }
        var afterWarmUp = probe.Samples.Where(s => s.Step >= steps / 3).ToList();
        double growth = (double)(afterWarmUp[^1].Rss - afterWarmUp[0].Rss) / afterWarmUp[0].Rss;
        foreach (var (step, rss, live) in probe.Samples) Console.WriteLine($"step {step,5}: RSS {rss / 1048576.0,7:F1} MB, live tensors {live}");
        Console.WriteLine($"RSS growth from step {afterWarmUp[0].Step} to {afterWarmUp[^1].Step}: {growth:P1}; live tensors {afterWarmUp[0].LiveTensors} -> {afterWarmUp[^1].LiveTensors}");
        return ExitCodes.Success;
    }
}
