using System.CommandLine;
using System.Diagnostics;
using SimClr.Cli.Processes;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Stages;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// `simclr bench step`: one SimCLR training step of the full-width network on pre-augmented views, timed with the
/// process's CPU time and page faults (bench/step_reference.py measures PyTorch's the same way).
/// </summary>
internal static class StepBench
{
    public static Command Create()
    {
        var threads = CommonOptions.Threads("torch intra-op threads (bench/step_reference.py takes the same)", 2);
        var steps = CommonOptions.Steps("timed steps per repeat", 5);
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 2 };
        var repeats = CommonOptions.Repeats("timed repeats (median and spread are reported)", 3);
        var quick = CommonOptions.Quick("1 warm-up step, 1 repeat of 2 steps (overrides the three above)");
        var device = CommonOptions.Device("cpu, cuda, cuda:1, ... (bench/step_reference.py takes the same)");
        var batch = CommonOptions.Batch("images per step, two views each (bench/step_reference.py takes the same)", DefaultImages);
        var precision = new Option<ComputePrecision>("--precision")
        {
            Description = "fp32, or bf16: convolutions and linear layers in bfloat16 (config precision; bench/step_reference.py --precision bf16 is torch.autocast's)",
            DefaultValueFactory = _ => ComputePrecision.Fp32,
        };
        var command = new Command("step", "One SimCLR training step (full-width CIFAR-stem ResNet-18 + 512-2048-128 head, 2x64 views, fp32 or bf16, "
            + "NT-Xent, LARS) on pre-augmented views: ms/step, views/s and process CPU time per step.")
        {
            threads, steps, warmup, repeats, quick, device, batch, precision,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench step", () => r.GetValue(quick)
            ? Run(r.GetValue(threads), steps: 2, warmup: 1, repeats: 1, r.GetValue(device)!, r.GetValue(batch), r.GetValue(precision))
            : Run(r.GetValue(threads), r.GetValue(steps), r.GetValue(warmup), r.GetValue(repeats), r.GetValue(device)!, r.GetValue(batch), r.GetValue(precision))));
        return command;
    }

    /// <summary>The default batch, bench/step_reference.py's: 64 images, two views each.</summary>
    private const int DefaultImages = 64;

    /// <summary>One repeat: wall milliseconds, user and system CPU seconds, and minor page faults, each per step.</summary>
    private readonly record struct Row(double Ms, double User, double Sys, double Faults);

    private static int Run(int threads, int steps, int warmup, int repeats, string deviceName, int images, ComputePrecision precision)
    {
        if (threads < 1 || steps < 1 || warmup < 0 || repeats < 1 || images < 1)
            throw new ConfigException("--threads, --steps, --repeats, --batch must be >= 1 and --warmup >= 0");
        StageRunner.CheckDevice(deviceName);
        var device = new Device(deviceName);
        set_num_threads(threads);
        Console.WriteLine($"malloc: {Allocator.Description}");
        var config = Config(threads, images) with { Precision = precision };
        using var replica = ReplicaFactory.Build(config, channels: 3, Cifar10.Mean, Cifar10.Std, device);
        var loss = new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp);
        double learningRate = config.Optimizer.PeakLearningRate(images);
        manual_seed(1);
        using var views = randn(2 * images, 3, 32, 32).to(device); // normalised views, made once (on the CPU, as PyTorch's): augmentation is not timed
        replica.Network.train();

        // the split step of DataParallelStep with one in-process replica (the single-process path), minus its byte
        // copies of z and dL/dz (128 x 128 floats): forward, NT-Xent and dL/dz on detached z, backward, LARS
        double OneStep()
        {
            using var scope = NewDisposeScope();
            replica.ZeroGrad();
            var z = replica.Network.forward(views);
            var (value, gradient) = loss.LossAndGradient(z);
            z.backward([gradient]);
            replica.Step(learningRate);
            return value;
        }

        for (int w = 0; w < warmup; w++) OneStep();
        double lastLoss = double.NaN;
        var rows = new List<Row>();
        for (int r = 0; r < repeats; r++)
        {
            var row = Measure(steps, () => lastLoss = OneStep(), device);
            rows.Add(row);
            Console.WriteLine($"repeat {r + 1}: {row.Ms:F1} ms/step, user {row.User:F3} s/step, sys {row.Sys:F3} s/step, minor faults {row.Faults:F0}/step");
        }
        double median = Timings.Median(rows.Select(x => x.Ms));
        Console.WriteLine($"simclr step ({device}, {precision.ToString().ToLowerInvariant()}, {threads} thread(s), {2 * images} views, loss {lastLoss:F4}): median {median:F1} ms/step ({2000.0 * images / median:F1} views/s), "
            + $"min {rows.Min(x => x.Ms):F1}, max {rows.Max(x => x.Ms):F1}; user {Timings.Median(rows.Select(x => x.User)):F3} s/step, "
            + $"sys {Timings.Median(rows.Select(x => x.Sys)):F3} s/step, minor faults {Timings.Median(rows.Select(x => x.Faults)):F0}/step ({repeats} repeats of {steps} steps after {warmup} warm-up), "
            + $"peak RSS {ProcessStats.PeakRss() / (1024.0 * 1024):F0} MiB");
        return ExitCodes.Success;
    }

    /// <summary>The quickstart's pre-training optimiser and loss, at full width with the seed's 2048-128 head (configs/cifar10-simclr-b256.json).</summary>
    private static RunConfig Config(int threads, int images) => new()
    {
        Stage = Stage.Pretrain,
        Threads = threads,
        Model = new ModelOptions { Width = 1.0, ProjectionHidden = 2048, ProjectionDim = 128 },
        Optimizer = new OptimizerOptions
        {
            Kind = OptimizerKind.Lars,
            BaseLearningRate = 1.0,
            Scaling = LearningRateScaling.Linear,
            Momentum = 0.9,
            WeightDecay = 1e-6,
            TrustCoefficient = 0.02,
        },
        BatchSize = images,
    };

    /// <summary><paramref name="steps"/> calls of <paramref name="step"/>: wall time (to the device's last kernel), CPU time and faults per step.</summary>
    private static Row Measure(int steps, Action step, Device device)
    {
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var (user0, sys0, faults0) = (self.UserProcessorTime, self.PrivilegedProcessorTime, ProcessStats.MinorFaults());
        var clock = Stopwatch.StartNew();
        for (int s = 0; s < steps; s++) step();
        if (device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(device);
        clock.Stop();
        self.Refresh();
        return new Row(clock.Elapsed.TotalMilliseconds / steps, (self.UserProcessorTime - user0).TotalSeconds / steps,
            (self.PrivilegedProcessorTime - sys0).TotalSeconds / steps, (double)(ProcessStats.MinorFaults() - faults0) / steps);
    }
}
