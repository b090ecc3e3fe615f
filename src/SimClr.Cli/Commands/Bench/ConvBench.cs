using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Config;
using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// `simclr bench conv`: every convolution shape of the CIFAR-stem ResNet-18 at a width, forward + backward on CPU, timed
/// through <see cref="Conv2d"/> (channels padded to whole oneDNN blocks where they fill one partly) and through libtorch's
/// conv2d unpadded, alternately. The cost of the padding, per convolution and for the whole network's convolutions.
/// With ONEDNN_VERBOSE=1 in the environment oneDNN prints the implementation of every convolution it runs.
/// </summary>
internal static class ConvBench
{
    public static Command Create()
    {
        var width = new Option<double>("--width") { Description = "ResNet-18 width multiplier", DefaultValueFactory = _ => 1.0 };
        var batch = CommonOptions.Batch("views per call (32 x 32)", 128);
        var threads = CommonOptions.Threads("torch intra-op threads", 2);
        var repeats = CommonOptions.Repeats("timed rounds (each times both paths once; medians reported)", 5);
        var command = new Command("conv", "The ResNet-18's convolutions on CPU, padded to whole oneDNN channel blocks (what training runs) against unpadded: "
            + "ms per forward + backward, and the padding's cost over the network.")
        {
            width, batch, threads, repeats,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench conv", () => Run(r.GetValue(width), r.GetValue(batch), r.GetValue(threads), r.GetValue(repeats))));
        return command;
    }

    /// <summary>(in, out, kernel, stride, padding, input side, count in the network), in network order.</summary>
    private static List<(int In, int Out, int Kernel, int Stride, int Padding, int Side, int Count)> Shapes(ResNetOptions options)
    {
        int c0 = options.Channels(0);
        var shapes = new List<(int, int, int, int, int, int, int)> { (options.InputChannels, c0, 3, 1, 1, 32, 1), (c0, c0, 3, 1, 1, 32, 4) };
        int side = 32;
        for (int stage = 1; stage < 4; stage++)
        {
            int cin = options.Channels(stage - 1), cout = options.Channels(stage);
            shapes.Add((cin, cout, 3, 2, 1, side, 1));
            shapes.Add((cin, cout, 1, 2, 0, side, 1));
            side /= 2;
            shapes.Add((cout, cout, 3, 1, 1, side, 3));
        }
        return shapes;
    }

    private static int Run(double width, int batch, int threads, int repeats)
    {
        if (!(width > 0) || batch < 1 || threads < 1 || repeats < 1)
            throw new ConfigException("--width must be > 0 and --batch, --threads, --repeats >= 1");
        set_num_threads(threads);
        manual_seed(1);
        double paddedTotal = 0, plainTotal = 0;
        Console.WriteLine($"width {width}, {batch} views of 32 x 32, {threads} thread(s), median of {repeats} rounds, forward + backward (input gradient except the stem's)");
        foreach (var (cin, cout, kernel, stride, padding, side, count) in Shapes(new ResNetOptions(width)))
        {
            using var conv = new Conv2d(cin, cout, kernel, stride, padding);
            using (no_grad()) conv.Weight.normal_(0, 0.1);
            using var input = randn(batch, cin, side, side);
            bool inputGradient = side != 32 || kernel != 3 || stride != 1 || cin != new ResNetOptions(width).InputChannels;
            double Time(bool padded)
            {
                var clock = Stopwatch.StartNew();
                using var scope = NewDisposeScope();
                var x = inputGradient ? input.detach().requires_grad_(true) : input;
                var y = padded ? conv.forward(x) : nn.functional.conv2d(x, conv.Weight, null, [stride, stride], [padding, padding]);
                y.backward([ones_like(y)]);
                conv.Weight.grad!.zero_();
                return clock.Elapsed.TotalMilliseconds;
            }
            Time(true);
            Time(false);
            var padded = new List<double>();
            var plain = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                padded.Add(Time(true));
                plain.Add(Time(false));
            }
            double p = Timings.Median(padded), u = Timings.Median(plain);
            paddedTotal += count * p;
            plainTotal += count * u;
            Console.WriteLine($"{cin,4} -> {cout,4}  {kernel}x{kernel} stride {stride} at {side,2}x{side,-2} x{count}: "
                + (conv.PadsOnCpu ? $"padded to {conv.CpuChannels.In} -> {conv.CpuChannels.Out}" : "not padded").PadRight(28)
                + $" {p,8:F2} ms, unpadded {u,8:F2} ms");
        }
        Console.WriteLine($"all convolutions (each shape x its count): {paddedTotal:F1} ms as trained, {plainTotal:F1} ms unpadded, "
            + $"padding costs {paddedTotal - plainTotal:F1} ms ({(paddedTotal / plainTotal - 1) * 100:F1}%)");
        return ExitCodes.Success;
    }
}
