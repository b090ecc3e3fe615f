using System.CommandLine;
using System.Diagnostics;
using SimClr.Cli.Processes;
using SimClr.Core.Config;
using SimClr.Core.Loss;
using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// `simclr bench loss`: the coordinator's global NT-Xent, loss and dL/dz over all gathered projections (issue 16), by
/// the tiled kernel and by the full 2N x 2N autograd matrix, side by side: the median time of a call after warm-up and
/// the peak memory one call adds (<see cref="PeakMemory"/> on the CPU; not measured on CUDA, for TorchSharp 0.107 has
/// no CUDA memory statistics), then each kernel's error against the full matrix in float64.
/// </summary>
internal static class LossBench
{
    public static Command Create()
    {
        var views = new Option<int>("--views") { Description = "projections (2 views per image: an even number)", DefaultValueFactory = _ => 8192 };
        var dim = new Option<int>("--dim") { Description = "projection size", DefaultValueFactory = _ => 128 };
        var device = CommonOptions.Device("cpu, cuda, cuda:1, ...");
        var repeats = CommonOptions.Repeats("timed calls per kernel (median and spread are reported)", 5);
        var warmup = new Option<int>("--warmup") { Description = "untimed calls per kernel first", DefaultValueFactory = _ => 1 };
        var kernel = new Option<string>("--kernel") { Description = "tiled, full, or both (side by side)", DefaultValueFactory = _ => "both" };
        kernel.AcceptOnlyFromAmong("tiled", "full", "both");
        var threads = CommonOptions.Threads("torch intra-op threads", 2);
        var temperature = new Option<double>("--temperature") { Description = "NT-Xent temperature", DefaultValueFactory = _ => 0.5 };
        var clamp = new Option<bool>("--seed-clamp") { Description = "the seed's similarity clamp (loss.seedSimilarityClamp)" };
        var reference = new Option<int>("--reference-views")
        {
            Description = "views (the first of the same projections) for the float64 reference error; -1: all, 0: none",
            DefaultValueFactory = _ => -1,
        };
        var command = new Command("loss", "The coordinator's NT-Xent loss + dL/dz over all views: tiled kernel vs the full 2N x 2N matrix, "
            + "median seconds per call, peak extra memory, and the error against a float64 reference.")
        {
            views, dim, device, repeats, warmup, kernel, threads, temperature, clamp, reference,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench loss", () => Run(
            new Setup(r.GetValue(views), r.GetValue(dim), r.GetValue(device)!, r.GetValue(threads), r.GetValue(temperature), r.GetValue(clamp)),
            r.GetValue(repeats), r.GetValue(warmup), r.GetValue(kernel)!, r.GetValue(reference))));
        return command;
    }

    /// <summary>What every measurement of one run shares.</summary>
    private sealed record Setup(int Views, int Dim, string DeviceName, int Threads, double Temperature, bool Clamp)
    {
        public NtXentLoss Loss(NtXentKernel kernel) => new(Temperature, Clamp) { Kernel = kernel };
    }

    private static int Run(Setup setup, int repeats, int warmup, string kernelChoice, int referenceViews)
    {
        if (setup.Views < 2 || setup.Views % 2 != 0 || setup.Dim < 1)
            throw new ConfigException("--views must be even and >= 2, --dim >= 1");
        if (repeats < 1 || warmup < 0 || setup.Threads < 1 || !(setup.Temperature > 0))
            throw new ConfigException("--repeats and --threads must be >= 1, --warmup >= 0, --temperature > 0");
        int checkedViews = referenceViews < 0 ? setup.Views : referenceViews;
        if (checkedViews % 2 != 0 || checkedViews > setup.Views)
            throw new ConfigException("--reference-views must be even and at most --views (-1: all, 0: none)");
        set_num_threads(setup.Threads);
        var device = new Device(setup.DeviceName);
        NtXentKernel[] kernels = kernelChoice switch
        {
            "tiled" => [NtXentKernel.Tiled],
            "full" => [NtXentKernel.Full],
            _ => [NtXentKernel.Tiled, NtXentKernel.Full],
        };
        using var generator = new Generator(1);
        using var z = randn([setup.Views, setup.Dim], generator: generator).to(device);
        Console.WriteLine($"simclr bench loss, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: {setup.Views} views x {setup.Dim}, float32, t {setup.Temperature}, "
            + $"seed clamp {(setup.Clamp ? "on" : "off")}, {device}, {setup.Threads} torch thread(s) of {Environment.ProcessorCount} cores; "
            + $"{warmup} warm-up call(s), {repeats} timed; malloc: {Allocator.Description}");
        foreach (var kernel in kernels) Measure(setup, kernel, z, device, warmup, repeats);
        if (checkedViews > 0) ReferenceErrors(setup, kernels, z.narrow(0, 0, checkedViews));
        return ExitCodes.Success;
    }

    /// <summary>Times loss + dL/dz by one kernel (the loss read to the host, CUDA synchronised) after measuring the memory of the call after the warm-up.</summary>
    private static void Measure(Setup setup, NtXentKernel kernel, Tensor z, Device device, int warmup, int repeats)
    {
        var loss = setup.Loss(kernel);
        using var self = Process.GetCurrentProcess();
        double Once()
        {
            var clock = Stopwatch.StartNew();
            using var scope = NewDisposeScope();
            var (_, gradient) = loss.LossAndGradient(z);
            if (device.type == DeviceType.CUDA) cuda.synchronize(device);
            return clock.Elapsed.TotalSeconds;
        }

        // memory after the warm-up (the first call also loads libraries, JIT-compiles, sizes caches) and before the timed
        // calls, which leave freed holes in the heap that a later call may land in (and then hold resident)
        for (int w = 0; w < warmup; w++) Once();
        string memory = device.type == DeviceType.CPU
            ? PeakMemory.Of(() => Once()).ToString()
            : "not measured (TorchSharp 0.107 exposes no CUDA memory statistics)";
        var seconds = new List<double>();
        var cpu = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            seconds.Add(Once());
            self.Refresh();
            cpu.Add((self.TotalProcessorTime - cpu0).TotalSeconds);
        }
        string what = kernel == NtXentKernel.Tiled
            ? $"tiled ({TiledNtXent.BlockRowsFor(setup.Views, z.element_size())} rows per block)"
            : "full (2N x 2N, autograd)";
        Console.WriteLine($"{what}: {string.Join(" ", seconds.Select(s => s.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))} s");
        var (median, min, max) = (Timings.Median(seconds), seconds.Min(), seconds.Max());
        Console.WriteLine($"  {kernel.ToString().ToLowerInvariant(),-5} median {median:F3} s per loss + dL/dz (min {min:F3}, max {max:F3}, {repeats} calls); "
            + $"process CPU {Timings.Median(cpu):F3} s per call (median); peak extra memory {memory}");
    }

    /// <summary>Each kernel in float32 against the full matrix in float64 on the same values: loss and gradient, relative.</summary>
    private static void ReferenceErrors(Setup setup, NtXentKernel[] kernels, Tensor z)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var (expected, expectedGradient) = setup.Loss(NtXentKernel.Full).LossAndGradient(z.to_type(ScalarType.Float64));
        double scale = expectedGradient.abs().max().ToDouble();
        Console.WriteLine($"float64 reference (full matrix, autograd, float64) at {z.shape[0]} views x {z.shape[1]}: loss {expected:R}, "
            + $"took {clock.Elapsed.TotalSeconds:F1} s");
        foreach (var kernel in kernels)
        {
            var (loss, gradient) = setup.Loss(kernel).LossAndGradient(z);
            double gradientError = gradient.to_type(ScalarType.Float64).Minus(expectedGradient).abs().max().ToDouble() / scale;
            Console.WriteLine($"  {kernel.ToString().ToLowerInvariant(),-5} float32: loss |L - L_ref| / |L_ref| = {Math.Abs(loss - expected) / Math.Abs(expected):0.00E+00}, "
                + $"gradient max |g - g_ref| / max |g_ref| = {gradientError:0.00E+00}");
        }
    }
}
