using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// `simclr bench reduce`: one full-width ResNet-18 gradient summed between N workers over loopback gRPC, by the ring
/// at each precision and by the coordinator's star, next to this machine's memcpy and the point-to-point link.
/// </summary>
internal static class ReduceBench
{
    public static Command Create()
    {
        var workers = new Option<string>("--workers") { Description = "worker counts to measure, comma-separated", DefaultValueFactory = _ => "2,4" };
        var repeats = CommonOptions.Repeats("timed repeats per count (median and spread)", 5);
        var precisions = new Option<string>("--precision") { Description = "ring precisions: exact, float32, bfloat16 (comma-separated)", DefaultValueFactory = _ => "exact,float32,bfloat16" };
        var star = new Option<bool>("--star") { Description = "also measure the coordinator's star (reduction.method star)", DefaultValueFactory = _ => true };
        var quick = CommonOptions.Quick("3 repeats, 2 and 4 workers, exact and bfloat16, no star");
        var command = new Command("reduce", "Gradient reduction of a full-width ResNet-18's gradient (11.2M float32) between N workers over loopback gRPC "
            + "(worker servers in this process): the ring all-reduce between workers by precision, and the coordinator's star, next to this "
            + "machine's memcpy and the point-to-point gRPC link, and the ring bound 2(N-1)/N x size at that link's rate.")
        {
            workers, repeats, precisions, star, quick,
        };
        command.SetAction(r => ExitCodes.RunAsync("simclr bench reduce", () => r.GetValue(quick)
            ? Run([2, 4], 3, [ReducePrecision.Exact, ReducePrecision.Bfloat16], star: false)
            : Run(Counts(r.GetValue(workers)!), r.GetValue(repeats), Precisions(r.GetValue(precisions)!), r.GetValue(star))));
        return command;
    }

    private static int[] Counts(string list) =>
        Parse(() => list.Split(',').Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture)).ToArray());

    private static ReducePrecision[] Precisions(string list) =>
        Parse(() => list.Split(',').Select(k => Enum.Parse<ReducePrecision>(k.Trim(), ignoreCase: true)).ToArray());

    private static T Parse<T>(Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            throw new ConfigException($"{e.Message} (--workers 2,4 --precision exact,float32,bfloat16)");
        }
    }

    private static async Task<int> Run(int[] counts, int repeats, ReducePrecision[] precisions, bool star)
    {
        if (counts.Length == 0 || counts.Any(c => c < 2) || repeats < 1 || precisions.Length == 0)
            throw new ConfigException("--workers must list counts >= 2, --repeats must be >= 1, --precision must name one");
        set_num_threads(1);
        var config = new RunConfig
        {
            Stage = Stage.Pretrain,
            Threads = 1,
            Model = new ModelOptions { Width = 1.0, ProjectionHidden = 2048, ProjectionDim = 128 },
            Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 16),
            BatchSize = 16,
        };
        using var data = await config.Data.LoadAsync();
        long parameters;
        using (var model = ReplicaFactory.Build(config, 3, data.Train.Mean, data.Train.Std, CPU)) parameters = model.ParameterCount;
        long gradientBytes = 4 * parameters;

        // the physical ceiling: one copy of a gradient in memory
        var source = new byte[gradientBytes];
        Random.Shared.NextBytes(source);
        double memcpy = gradientBytes / MemcpySeconds(source) / 1e9;
        Console.WriteLine($"gradient: {parameters:N0} parameters, {gradientBytes / 1e6:F1} MB in float32; memcpy {memcpy:F2} GB/s (median of 5, one thread)");

        await using (var rig = await ReduceRig.StartAsync(counts.Max(), source, repeats))
        {
            double linkBandwidth = await rig.MeasureLinkAsync(memcpy);
            var random = new Random(1);
            foreach (int n in counts) await rig.MeasureRingAsync(n, precisions, linkBandwidth, random);
            if (star)
            {
                foreach (int n in counts) await rig.MeasureStarAsync(n, config, data.Train, linkBandwidth);
            }
        }
        Console.WriteLine("(worker servers in this process, each its own Kestrel and HTTP/2 connections; the ring's time includes its additions and "
            + "precision conversions; the star's figures are scaled from a whole state to one gradient and include the workers' (de)serialisation)");
        return ExitCodes.Success;
    }

    /// <summary>Seconds one copy of <paramref name="source"/> takes in memory: the third fastest of the last 5 of 7 copies.</summary>
    private static double MemcpySeconds(byte[] source)
    {
        var target = new byte[source.Length];
        var copies = new List<double>();
        for (int i = 0; i < 7; i++)
        {
            long start = Stopwatch.GetTimestamp();
            source.AsSpan().CopyTo(target);
            copies.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return copies.Skip(2).Order().ElementAt(2);
    }
}
