using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands;

/// <summary>
/// For now: a short single-process SimCLR loop on generated images that shows the loss falling. The full
/// quickstart (pre-train, linear eval, fine-tune, supervised on the embedded data set) replaces it.
/// </summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var steps = new Option<int>("--steps") { Description = "optimiser steps", DefaultValueFactory = _ => 40 };
        var batch = new Option<int>("--batch") { Description = "images per step (2x views)", DefaultValueFactory = _ => 32 };
        var width = new Option<double>("--width") { Description = "ResNet-18 width multiplier", DefaultValueFactory = _ => 0.25 };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var command = new Command("quickstart", "Short SimCLR pre-training on generated images; prints the NT-Xent loss as it falls.")
        {
            steps, batch, width, seed,
        };
        command.SetAction(result => Run(result.GetValue(steps), result.GetValue(batch), result.GetValue(width), result.GetValue(seed)));
        return command;
    }

    private static int Run(int steps, int batch, double width, int seed)
    {
        var problems = new List<string>();
        if (steps < 1) problems.Add($"--steps must be >= 1 (got {steps})");
        if (batch < 2) problems.Add($"--batch must be >= 2 (got {batch})");
        if (!(width > 0)) problems.Add($"--width must be > 0 (got {width})");
        if (problems.Count > 0)
        {
            Console.Error.WriteLine("simclr quickstart: " + string.Join("; ", problems));
            return 2;
        }

        manual_seed(seed);
        using var net = new SimClrNetwork(new ResNetOptions(Width: width), projectionHidden: 256, projectionDim: 64);
        var loss = new NtXentLoss(temperature: 0.5);
        using var optimizer = optim.SGD(net.parameters(), learningRate: 0.1, momentum: 0.9, weight_decay: 1e-6);
        using var images = GeneratedImages(256, seed);
        var generator = new Generator((ulong)seed + 1);
        Console.WriteLine($"SimCLR on {images.shape[0]} generated 32x32 images: ResNet-18 width {width}, batch {batch} ({2 * batch} views), {steps} steps");

        var clock = Stopwatch.StartNew();
        var losses = new List<double>();
        for (int step = 1; step <= steps; step++)
        {
            using var scope = NewDisposeScope();
            var index = randint(0, images.shape[0], [batch], generator: generator);
            var views = TwoViews(images.index_select(0, index), generator);
            optimizer.zero_grad();
            var value = loss.Forward(net.forward(views));
            value.backward();
            optimizer.step();
            losses.Add(value.item<float>());
            if (step == 1 || step % 5 == 0 || step == steps)
                Console.WriteLine($"step {step,4}/{steps}  loss {losses[^1]:F4}  {2.0 * batch * step / clock.Elapsed.TotalSeconds,7:F1} views/s");
        }
        int k = Math.Max(1, steps / 5);
        Console.WriteLine($"mean loss, first {k} steps: {losses.Take(k).Average():F4}; last {k} steps: {losses.TakeLast(k).Average():F4}");
        return 0;
    }

    /// <summary>Coloured squares of random size and place on noisy backgrounds, [n, 3, 32, 32] in [0, 1].</summary>
    private static Tensor GeneratedImages(int n, int seed)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)seed);
        var background = rand([n, 3, 1, 1], generator: g) * 0.5 + rand([n, 3, 32, 32], generator: g) * 0.2;
        var colour = rand([n, 3, 1, 1], generator: g);
        var size = randint(6, 20, [n, 1, 1, 1], generator: g);
        var top = randint(0, 12, [n, 1, 1, 1], generator: g);
        var left = randint(0, 12, [n, 1, 1, 1], generator: g);
        var rows = arange(32).view(1, 1, 32, 1);
        var cols = arange(32).view(1, 1, 1, 32);
        var inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size);
        return where(inside, colour.expand(n, 3, 32, 32), background).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Two cheap random views per image (flip, shift, brightness, noise), interleaved as NT-Xent expects.</summary>
    private static Tensor TwoViews(Tensor images, Generator g)
    {
        long n = images.shape[0];
        var views = stack([images, images], dim: 1).reshape(2 * n, 3, 32, 32);
        var flip = rand([2 * n, 1, 1, 1], generator: g) < 0.5;
        views = where(flip, views.flip(3), views);
        views = views.roll([randint(-4, 5, [1], generator: g).item<long>(), randint(-4, 5, [1], generator: g).item<long>()], [2, 3]);
        views = views * (rand([2 * n, 1, 1, 1], generator: g) * 0.6 + 0.7) + randn([2 * n, 3, 32, 32], generator: g) * 0.05;
        return (views - 0.5) / 0.25;
    }
}
