using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>`simclr bench augment`: views per second of the seed's CIFAR-10 augmentation, per thread.</summary>
internal static class AugmentBench
{
    public static Command Create()
    {
        var threads = CommonOptions.Threads("torch intra-op threads (views/s is reported per thread)", 1);
        var batch = CommonOptions.Batch("images per call (two views each)", 256);
        var repeats = CommonOptions.Repeats("timed runs (median and spread are reported)", 5);
        var views = new Option<int>("--views") { Description = "views per timed run", DefaultValueFactory = _ => 20_000 };
        var device = CommonOptions.Device("cpu, cuda, cuda:1, ...");
        var size = new Option<int>("--size") { Description = "image and view side in pixels (32: CIFAR-10; 96: STL-10; 224: ImageNet)", DefaultValueFactory = _ => 32 };
        var blur = new Option<double>("--blur") { Description = "Gaussian blur probability (the paper's ImageNet recipe: 0.5)", DefaultValueFactory = _ => 0 };
        var kernel = new Option<AugmentationKernel>("--kernel") { Description = "auto (fused CPU loops on cpu), tensor, cpu", DefaultValueFactory = _ => AugmentationKernel.Auto };
        var command = new Command("augment", "SimCLR view augmentation throughput (the seed's CIFAR-10 transform), views/s per thread.")
        {
            threads, batch, repeats, views, device, kernel, size, blur,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench augment",
            () => Run(r.GetValue(threads), r.GetValue(batch), r.GetValue(repeats), r.GetValue(views), r.GetValue(device)!, r.GetValue(kernel), r.GetValue(size), r.GetValue(blur))));
        return command;
    }

    private static int Run(int threads, int batch, int repeats, int viewsPerRun, string deviceName, AugmentationKernel kernel, int size, double blur)
    {
        if (threads < 1 || batch < 1 || repeats < 1 || viewsPerRun < 2)
            throw new ConfigException("--threads, --batch, --repeats must be >= 1 and --views >= 2");
        if (size < 8 || size > 1024) throw new ConfigException("--size must be in [8, 1024]");
        set_num_threads(threads);
        var device = new Device(deviceName);
        using var data = SyntheticShapes.Generate(trainCount: 1024, testCount: 1, seed: 0);
        var augmenter = new ViewAugmenter(new AugmentationOptions { OutputSize = size, BlurProbability = blur }, seed: 0, Cifar10.Mean, Cifar10.Std) { Kernel = kernel, CpuThreads = threads };
        using var source = size == 32 ? data.Train.Images.alias() // the shapes, scaled up to the asked size (bilinear) for bigger images
            : nn.functional.interpolate(data.Train.Images.to(ScalarType.Float32), [size, size], mode: InterpolationMode.Bilinear, align_corners: false).round().clamp(0, 255).to(ScalarType.Byte);
        using var images = source.to(device);
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
        var (median, min, max) = Timings.Spread(rates);
        Console.WriteLine($"simclr augment ({device}, {kernel} kernel, {size}x{size}{(blur > 0 ? $", blur p {blur}" : "")}, {threads} thread(s), batch {batch} images = {2 * batch} views): "
            + $"median {median:F0} views/s per thread, min {min:F0}, max {max:F0} ({repeats} runs of {2 * batch * calls} views)");
        return ExitCodes.Success;
    }
}
