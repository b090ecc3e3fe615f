using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Config;
using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// `simclr bench nccl`: NCCL's smoke test on one GPU (issue 19, bench/gpu.sh): loads the library as a worker does, makes a
/// unique id, joins a 1-rank communicator, all-reduces a bucket of known values on the device (the sum over one rank is
/// the bucket: checked bit for bit), then times the all-reduce of the bucket. Where NCCL cannot load, it says what to
/// install or set and exits 2.
/// </summary>
internal static class NcclBench
{
    public static Command Create()
    {
        var device = CommonOptions.Device("the CUDA device: cuda, cuda:1, ...");
        var elements = new Option<long>("--elements") { Description = "float32 values in the bucket (25 MB of float32: 6250000, DDP's default bucket)", DefaultValueFactory = _ => 6_250_000 };
        var repeats = CommonOptions.Repeats("timed all-reduces", 10);
        var library = new Option<string?>("--nccl-library") { Description = $"path of {Nccl.LibraryName} (default: ${Nccl.LibraryVariable}, else the loader's path and Python's nvidia-nccl wheels)" };
        var command = new Command("nccl", "NCCL smoke test: a 1-rank communicator on one GPU all-reduces a known bucket (checked), then the time of that all-reduce.")
        {
            device, elements, repeats, library,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench nccl", () => Run(r.GetValue(device)!, r.GetValue(elements), r.GetValue(repeats), r.GetValue(library))));
        return command;
    }

    private static int Run(string deviceName, long elements, int repeats, string? library)
    {
        if (elements < 1 || repeats < 1) throw new ConfigException("--elements and --repeats must be >= 1");
        Nccl nccl;
        try
        {
            nccl = Nccl.Load(library);
        }
        catch (DeviceCollectiveUnavailableException e)
        {
            throw new ConfigException(e.Message);
        }
        var device = new Device(deviceName);
        if (nccl.Problem(device) is { } problem) throw new ConfigException($"{nccl.Description}: --device {deviceName}: {problem}");
        Console.WriteLine($"simclr bench nccl, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: {nccl.Description}, {device}, a bucket of {elements} float32 values, 1 rank");
        byte[] id = nccl.NewUniqueId();
        using var communicator = nccl.Join(id, ranks: 1, rank: 0, device);
        using var bucket = arange(elements, ScalarType.Float32).remainder(1000).to(device).contiguous();
        using var expected = bucket.clone();
        communicator.AllReduceSum(bucket);
        if (!bucket.equal(expected).ToBoolean())
            throw new InvalidDataException($"the 1-rank all-reduce changed the bucket: largest difference {(bucket - expected).abs().max().ToDouble()}");
        Console.WriteLine($"  all-reduce of a known bucket over 1 rank: the sum is the bucket, bit for bit ({elements} values)");
        var ms = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            cuda.synchronize(device);
            long start = Stopwatch.GetTimestamp();
            communicator.AllReduceSum(bucket);
            cuda.synchronize(device);
            ms.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        double median = Timings.Median(ms);
        Console.WriteLine($"  median {median:F3} ms per all-reduce of {elements * 4 / 1e6:F1} MB ({elements * 4 / 1e9 / (median / 1e3):F1} GB/s on 1 rank: the launch cost, no traffic)");
        communicator.Abort();
        return ExitCodes.Success;
    }
}
