using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Augmentation;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands;

/// <summary>
/// For now: a short single-process SimCLR loop on the embedded synthetic-shapes data set with the seed's augmentations,
/// showing the loss falling. The full
/// quickstart (pre-train, linear eval, fine-tune, supervised on the embedded data set) replaces it.
/// </summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var steps = new Option<int>("--steps") { Description = "optimiser steps", DefaultValueFactory = _ => 100 };
        var batch = new Option<int>("--batch") { Description = "images per step (2x views)", DefaultValueFactory = _ => 64 };
        var width = new Option<double>("--width") { Description = "ResNet-18 width multiplier", DefaultValueFactory = _ => 0.25 };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var command = new Command("quickstart", "Short SimCLR pre-training on the embedded synthetic-shapes images; prints the NT-Xent loss as it falls.")
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
        if (batch < 2 || batch > 2000) problems.Add($"--batch must be in 2..2000 (got {batch})");
        if (!(width > 0)) problems.Add($"--width must be > 0 (got {width})");
        if (problems.Count > 0)
        {
            Console.Error.WriteLine("simclr quickstart: " + string.Join("; ", problems));
            return 2;
        }

        manual_seed(seed);
        using var data = SyntheticShapes.Generate(trainCount: 2000, testCount: 10, seed: (ulong)seed);
        var train = data.Train;
        var augmenter = new ViewAugmenter(new AugmentationOptions(), (ulong)seed, train.Mean, train.Std);
        using var net = new SimClrNetwork(new ResNetOptions(Width: width), projectionHidden: 256, projectionDim: 64);
        var loss = new NtXentLoss(temperature: 0.5);
        using var optimizer = optim.SGD(net.parameters(), learningRate: 0.1, momentum: 0.9, weight_decay: 1e-6);
        Console.WriteLine($"SimCLR on {train.Count} {train.Name} images: ResNet-18 width {width}, batch {batch} ({2 * batch} views), {steps} steps");

        var clock = Stopwatch.StartNew();
        var losses = new List<double>();
        var sampler = new EpochSampler(train.Count, batch, (ulong)seed);
        int stepsPerEpoch = sampler.BatchesPerEpoch;
        long[] order = [];
        for (int step = 1; step <= steps; step++)
        {
            int epoch = (step - 1) / stepsPerEpoch, offset = (step - 1) % stepsPerEpoch * batch;
            if (offset == 0) order = sampler.Permutation(epoch);
            using var scope = NewDisposeScope();
            var indices = order.AsSpan(offset, batch);
            var views = augmenter.TwoViews(train.Batch(indices), indices, epoch);
            optimizer.zero_grad();
            var value = loss.Forward(net.forward(views));
            value.backward();
            optimizer.step();
            losses.Add(value.item<float>());
            if (step == 1 || step % 10 == 0 || step == steps)
                Console.WriteLine($"step {step,4}/{steps}  epoch {epoch}  loss {losses[^1]:F4}  {2.0 * batch * step / clock.Elapsed.TotalSeconds,7:F1} views/s");
        }
        int k = Math.Max(1, steps / 5);
        Console.WriteLine($"mean loss, first {k} steps: {losses.Take(k).Average():F4}; last {k} steps: {losses.TakeLast(k).Average():F4}");
        return 0;
    }
}
