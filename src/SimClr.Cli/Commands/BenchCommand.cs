using System.CommandLine;
using System.Diagnostics;
using SimClr.Cli.Processes;
using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Optim;
using SimClr.Core.Training;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands;

/// <summary>Benchmarks that print figures (BENCHMARKS.md records them with these commands); never part of the tests.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure performance; prints figures for BENCHMARKS.md.");
        command.Subcommands.Add(Augment());
        command.Subcommands.Add(Memory());
        command.Subcommands.Add(Step());
        return command;
    }

    private static Command Memory()
    {
        var steps = new Option<int>("--steps") { Description = "pre-training steps of a tiny net", DefaultValueFactory = _ => 300 };
        var command = new Command("memory", "Resident memory and live tensors over a tiny pre-training run: flat after warm-up, or a leak.") { steps };
        command.SetAction(async r => await RunMemory(r.GetValue(steps)));
        return command;
    }

    private static async Task<int> RunMemory(int steps)
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
        return 0;
    }

    private static Command Step()
    {
        var threads = new Option<int>("--threads") { Description = "torch intra-op threads (bench/step_reference.py takes the same)", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--steps") { Description = "timed steps per repeat", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 2 };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats (median and spread are reported)", DefaultValueFactory = _ => 3 };
        var quick = new Option<bool>("--quick") { Description = "1 warm-up step, 1 repeat of 2 steps (overrides the three above)" };
        var command = new Command("step", "One SimCLR training step (full-width CIFAR-stem ResNet-18 + 512-2048-128 head, 2x64 views, fp32, "
            + "NT-Xent, LARS) on pre-augmented views: ms/step and process CPU time per step.")
        {
            threads, steps, warmup, repeats, quick,
        };
        command.SetAction(r => r.GetValue(quick)
            ? RunStep(r.GetValue(threads), steps: 2, warmup: 1, repeats: 1)
            : RunStep(r.GetValue(threads), r.GetValue(steps), r.GetValue(warmup), r.GetValue(repeats)));
        return command;
    }

    /// <summary>The batch of bench/step_reference.py: 64 images, two views each.</summary>
    private const int StepImages = 64;

    private static int RunStep(int threads, int steps, int warmup, int repeats)
    {
        if (threads < 1 || steps < 1 || warmup < 0 || repeats < 1)
        {
            Console.Error.WriteLine("simclr bench step: --threads, --steps, --repeats must be >= 1 and --warmup >= 0");
            return 2;
        }
        set_num_threads(threads);
        Console.WriteLine($"malloc: {Allocator.Description}");
        // the quickstart's pre-training optimiser and loss, at full width with the seed's 2048-128 head (configs/cifar10-simclr-b256.json)
        var config = new RunConfig
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
            BatchSize = StepImages,
        };
        using var replica = ModelReplica.Build(config, channels: 3, Cifar10.Mean, Cifar10.Std, CPU);
        var loss = new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp);
        double learningRate = config.Optimizer.PeakLearningRate(StepImages);
        manual_seed(1);
        using var views = randn(2 * StepImages, 3, 32, 32); // normalised views, made once: augmentation is not timed
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
        var rows = new List<(double Ms, double User, double Sys, double Faults)>();
        using var self = Process.GetCurrentProcess();
        double lastLoss = double.NaN;
        for (int r = 0; r < repeats; r++)
        {
            self.Refresh();
            var (user0, sys0, faults0) = (self.UserProcessorTime, self.PrivilegedProcessorTime, MinorFaults());
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++) lastLoss = OneStep();
            clock.Stop();
            self.Refresh();
            var row = (clock.Elapsed.TotalMilliseconds / steps, (self.UserProcessorTime - user0).TotalSeconds / steps,
                (self.PrivilegedProcessorTime - sys0).TotalSeconds / steps, (double)(MinorFaults() - faults0) / steps);
            rows.Add(row);
            Console.WriteLine($"repeat {r + 1}: {row.Item1:F1} ms/step, user {row.Item2:F3} s/step, sys {row.Item3:F3} s/step, minor faults {row.Item4:F0}/step");
        }
        static double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToList();
            return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
        }
        Console.WriteLine($"simclr step ({threads} thread(s), {2 * StepImages} views, loss {lastLoss:F4}): median {Median(rows.Select(x => x.Ms)):F1} ms/step, "
            + $"min {rows.Min(x => x.Ms):F1}, max {rows.Max(x => x.Ms):F1}; user {Median(rows.Select(x => x.User)):F3} s/step, "
            + $"sys {Median(rows.Select(x => x.Sys)):F3} s/step, minor faults {Median(rows.Select(x => x.Faults)):F0}/step ({repeats} repeats of {steps} steps after {warmup} warm-up), "
            + $"peak RSS {PeakRssKiB() / 1024.0:F0} MiB");
        return 0;
    }

    /// <summary>The largest resident set of this process so far, KiB (VmHWM in /proc/self/status), or 0 where there is no /proc.</summary>
    private static long PeakRssKiB()
    {
        if (!File.Exists("/proc/self/status")) return 0;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat field 10), or 0 where there is no /proc.</summary>
    private static long MinorFaults()
    {
        if (!File.Exists("/proc/self/stat")) return 0;
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture); // fields from 3 (state) on
    }

    private static Command Augment()
    {
        var threads = new Option<int>("--threads") { Description = "torch intra-op threads (views/s is reported per thread)", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "images per call (two views each)", DefaultValueFactory = _ => 256 };
        var repeats = new Option<int>("--repeats") { Description = "timed runs (median and spread are reported)", DefaultValueFactory = _ => 5 };
        var views = new Option<int>("--views") { Description = "views per timed run", DefaultValueFactory = _ => 20_000 };
        var device = new Option<string>("--device") { Description = "cpu, cuda, cuda:1, ...", DefaultValueFactory = _ => "cpu" };
        var kernel = new Option<AugmentationKernel>("--kernel") { Description = "auto (fused CPU loops on cpu), tensor, cpu", DefaultValueFactory = _ => AugmentationKernel.Auto };
        var command = new Command("augment", "SimCLR view augmentation throughput (the seed's CIFAR-10 transform), views/s per thread.")
        {
            threads, batch, repeats, views, device, kernel,
        };
        command.SetAction(r => RunAugment(r.GetValue(threads), r.GetValue(batch), r.GetValue(repeats), r.GetValue(views), r.GetValue(device)!, r.GetValue(kernel)));
        return command;
    }

    private static int RunAugment(int threads, int batch, int repeats, int viewsPerRun, string deviceName, AugmentationKernel kernel)
    {
        if (threads < 1 || batch < 1 || repeats < 1 || viewsPerRun < 2)
        {
            Console.Error.WriteLine("simclr bench augment: --threads, --batch, --repeats must be >= 1 and --views >= 2");
            return 2;
        }
        set_num_threads(threads);
        var device = new Device(deviceName);
        using var data = SyntheticShapes.Generate(trainCount: 1024, testCount: 1, seed: 0);
        var augmenter = new ViewAugmenter(new AugmentationOptions(), seed: 0, Cifar10.Mean, Cifar10.Std) { Kernel = kernel, CpuThreads = threads };
        using var images = data.Train.Images.to(device);
        int calls = Math.Max(1, viewsPerRun / (2 * batch));
        long epoch = 0;

        void OneCall(int call)
        {
            using var scope = NewDisposeScope();
            long start = (long)call * batch % (1024 - batch + 1);
            var indices = Enumerable.Range(0, batch).Select(i => start + i).ToArray();
            var views = augmenter.TwoViews(images.narrow(0, start, batch), indices, epoch++);
            if (device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize();
            _ = views.shape;
        }

        // warm-up: past .NET's tiered JIT (hot loops are recompiled optimised after ~30 calls) and torch's first-call costs
        var warmUp = Stopwatch.StartNew();
        for (int w = 0; w < 40 || warmUp.Elapsed.TotalSeconds < 1; w++) OneCall(w);
        var rates = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            for (int c = 0; c < calls; c++) OneCall(c);
            rates.Add(2.0 * batch * calls / clock.Elapsed.TotalSeconds / threads);
        }
        rates.Sort();
        Console.WriteLine($"simclr augment ({device}, {kernel} kernel, {threads} thread(s), batch {batch} images = {2 * batch} views): "
            + $"median {rates[rates.Count / 2]:F0} views/s per thread, min {rates[0]:F0}, max {rates[^1]:F0} ({repeats} runs of {2 * batch * calls} views)");
        return 0;
    }
}
