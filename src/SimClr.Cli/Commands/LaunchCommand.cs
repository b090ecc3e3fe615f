using System.CommandLine;
using SimClr.Core.Config;

namespace SimClr.Cli.Commands;

/// <summary>
/// simclr launch: a distributed pre-training run on one box. Starts N worker processes (free ports, chosen by the OS
/// and read back from each worker), then the coordinator; merges their output with prefixes; stops everything in order
/// when the run ends, when any process fails, or on Ctrl-C/SIGTERM (the coordinator writes a checkpoint first);
/// and never leaves a process behind (each child also stops by itself if the launcher disappears).
/// </summary>
internal static class LaunchCommand
{
    public static Command Create()
    {
        var run = new RunOptions("finetune: checkpoint or exported backbone to start from");
        var workers = new Option<int?>("--workers", "-n") { Description = "worker processes, >= 1 (default: one per device in --devices; 2 for --devices cpu)" };
        var devices = new Option<string>("--devices", "-d") { Description = "cpu, or the workers' devices in order: cuda:0,cuda:1,...", DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int>("--threads-per-worker") { Description = "torch threads per CPU worker (default: cores / workers)", DefaultValueFactory = _ => 0 };
        var stage = CommonOptions.DistributedStage("pretrain, finetune or supervised");
        var command = new Command("launch", "Distributed training on this machine: N worker processes + the coordinator, logs merged, stopped together.")
        {
            run.Config, run.Set, run.Resume, workers, devices, threads, stage, run.Pretrained,
        };
        command.SetAction((r, cancel) => ExitCodes.RunAsync("simclr launch",
            () => RunAsync(Placement(r.GetValue(workers), r.GetValue(devices)!), r.GetValue(threads), ["--stage", r.GetValue(stage)!, .. run.PassOn(r)])));
        return command;
    }

    /// <summary>The device of each worker: "cpu" for N workers, or one listed device per worker.</summary>
    public static IReadOnlyList<string> Placement(int? workers, string devices)
    {
        var list = devices.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (list.Length == 0) throw new ConfigException("--devices lists no device");
        if (workers < 1)
            throw new ConfigException($"--workers must be >= 1 (got {workers}); leave it out for the default: one per device in --devices, 2 for --devices cpu");
        if (list.Length == 1)
            return Enumerable.Repeat(list[0], workers ?? (list[0] == "cpu" ? 2 : 1)).ToList();
        if (workers is not null && workers != list.Length)
            throw new ConfigException($"--workers {workers} but --devices lists {list.Length} devices; give one device per worker, or one device for all");
        return list;
    }

    private static async Task<int> RunAsync(IReadOnlyList<string> devices, int threadsPerWorker, IReadOnlyList<string> passOn)
    {
        if (threadsPerWorker <= 0) threadsPerWorker = Math.Max(1, Environment.ProcessorCount / devices.Count);
        using var run = new LaunchedRun(devices, threadsPerWorker); // disposed last: kills whatever is still running
        using var signals = Interrupts.Handle(run.Signal);
        return await run.RunAsync(passOn);
    }
}
