using System.CommandLine;
using System.Text.RegularExpressions;
using SimClr.Cli.Processes;
using SimClr.Core.Config;

namespace SimClr.Cli.Commands;

/// <summary>
/// simclr launch: a distributed pre-training run on one box. Starts N worker processes (free ports, chosen by the OS
/// and read back from each worker), then the coordinator; merges their output with prefixes; stops everything in order
/// when the run ends, when any process fails, or on Ctrl-C/SIGTERM (the coordinator writes a checkpoint first);
/// and never leaves a process behind (each child also stops by itself if the launcher disappears).
/// </summary>
internal static partial class LaunchCommand
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

    private static readonly Lock OutputGate = new();

    private static void Write(string prefix, string line, bool error = false)
    {
        lock (OutputGate) (error ? Console.Error : Console.Out).WriteLine($"[{prefix}] {line}");
    }

    private static async Task<int> RunAsync(IReadOnlyList<string> devices, int threadsPerWorker, IReadOnlyList<string> passOn)
    {
        int me = Environment.ProcessId;
        if (threadsPerWorker <= 0) threadsPerWorker = Math.Max(1, Environment.ProcessorCount / devices.Count);
        var interrupted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int signals = 0;
        var children = new List<ChildProcess>();
        void OnSignal()
        {
            if (Interlocked.Increment(ref signals) == 1)
            {
                Write("launch", "stopping: the coordinator writes a checkpoint, then the workers stop (again to kill everything now)");
                interrupted.TrySetResult();
            }
            else
            {
                Write("launch", "killing every process now");
                lock (children) foreach (var c in children) c.Kill();
            }
        }
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            OnSignal();
        };
        Console.CancelKeyPress += onCancel;
        var childEnvironment = ChildAllocator(out string allocator);
        Write("launch", $"allocator of the workers and the coordinator: {allocator}");
        if (Jit.ForLaunchedProcesses(Allocator.CurrentEnvironment()) is { } jit)
        {
            childEnvironment[jit.Key] = jit.Value;
            Write("launch", $"JIT of the workers and the coordinator: everything optimised at its first call ({jit.Key}={jit.Value}; set it yourself to choose)");
        }
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            OnSignal();
        });
        try
        {
            // 1. workers, each on a free port the OS picks; the port comes back in the worker's first line
            var addresses = new TaskCompletionSource<string>[devices.Count];
            ChildProcess StartWorker(int w, int port, TaskCompletionSource<string>? address)
            {
                string[] args = ["worker", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--device", devices[w],
                    "--parent-pid", me.ToString(System.Globalization.CultureInfo.InvariantCulture)];
                if (devices[w] == "cpu") args = [.. args, "--threads", threadsPerWorker.ToString(System.Globalization.CultureInfo.InvariantCulture)];
                return ChildProcess.StartSelf($"worker{w}", args, (c, line) =>
                {
                    if (address is { Task.IsCompleted: false } && ListeningLine().Match(line) is { Success: true } m) address.TrySetResult(m.Groups[1].Value);
                    Write(c.Name, line);
                }, childEnvironment);
            }
            for (int w = 0; w < devices.Count; w++)
            {
                addresses[w] = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                var child = StartWorker(w, 0, addresses[w]);
                lock (children) children.Add(child);
                Write("launch", $"worker{w}: pid {child.Pid}, device {devices[w]}" + (devices[w] == "cpu" ? $", {threadsPerWorker} threads" : ""));
            }
            var urls = new List<string>();
            for (int w = 0; w < devices.Count; w++)
            {
                var worker = children[w];
                var first = await Task.WhenAny(addresses[w].Task, worker.Exited, interrupted.Task, Task.Delay(TimeSpan.FromMinutes(2)));
                if (first != addresses[w].Task)
                {
                    string why = first == worker.Exited ? $"exited with code {worker.Exited.Result} before listening"
                        : first == interrupted.Task ? "interrupted while starting" : "did not start listening within 2 minutes";
                    Write("launch", $"{worker.Name} {why}; stopping", error: true);
                    await StopWorkersAsync(children);
                    return first == interrupted.Task ? ExitCodes.Interrupted : ExitCodes.WorkerFailed;
                }
                urls.Add(addresses[w].Task.Result);
            }

            // 2. the coordinator, which waits for every worker's health, joins them and runs the stage
            var coordinatorArgs = new List<string> { "coordinator", "--workers", string.Join(",", urls), "--plain", "--health-port", "0", "--parent-pid", me.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            coordinatorArgs.AddRange(passOn);
            var coordinator = ChildProcess.StartSelf("coord", coordinatorArgs, (c, line) => Write(c.Name, line), childEnvironment);
            lock (children) children.Add(coordinator);
            Write("launch", $"coordinator: pid {coordinator.Pid}");

            // 3. wait for the end, a failure, or a signal
            var running = children.Take(devices.Count).ToList();
            var restarts = new int[devices.Count];
            int code;
            while (true)
            {
                var done = await Task.WhenAny([coordinator.Exited, interrupted.Task, .. running.Select(w => (Task)w.Exited)]);
                if (done == coordinator.Exited)
                {
                    code = coordinator.Exited.Result;
                    break;
                }
                if (done == interrupted.Task)
                {
                    // SIGTERM, not SIGINT, whichever signal the launcher got: a script's background job (`simclr launch &`)
                    // starts with SIGINT ignored, and the children inherit that, so a forwarded SIGINT would be lost and
                    // the run would go on; the coordinator handles SIGTERM as Ctrl-C (a checkpoint, then exit 130)
                    code = await coordinator.StopAsync(coordinator.Terminate, TimeSpan.FromMinutes(5));
                    if (code == 128 + Sigterm) code = ExitCodes.Interrupted; // stopped by the signal itself, before its handler was installed
                    break;
                }
                // a worker died: the coordinator notices on its own and, by faults.policy, redoes the step over the
                // others (elastic) or stops with a clear message (fail-fast); either way it decides, not the launcher
                var dead = running.First(w => w.Exited == done);
                running.Remove(dead);
                Write("launch", $"{dead.Name} exited with code {dead.Exited.Result} during the run; the coordinator goes on without it (faults.policy elastic) or stops (fail-fast)", error: true);
                // start it again on the same port: the coordinator probes lost workers and takes it back between steps
                int index = int.Parse(dead.Name["worker".Length..], System.Globalization.CultureInfo.InvariantCulture);
                if (restarts[index] < MaxRestarts && !coordinator.HasExited)
                {
                    restarts[index]++;
                    int port = new Uri(urls[index]).Port;
                    var again = StartWorker(index, port, null);
                    lock (children) children.Add(again);
                    running.Add(again);
                    Write("launch", $"{again.Name}: restarted on port {port} (restart {restarts[index]} of {MaxRestarts}), pid {again.Pid}");
                }
            }
            await StopWorkersAsync(running);
            Write("launch", code == ExitCodes.Success ? "done" : $"finished with exit code {code}");
            return code;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            lock (children)
            {
                foreach (var c in children) c.Dispose(); // kills whatever is still running: no orphans
            }
        }
    }

    /// <summary>
    /// The environment the launched processes get for their malloc: LD_PRELOAD of tcmalloc where it is installed and
    /// neither SIMCLR_MALLOC nor LD_PRELOAD says otherwise (with glibc's malloc each full-width step maps and faults in
    /// its large blocks anew; see Allocator); else nothing, and each process tunes glibc's malloc itself at start-up.
    /// </summary>
    private static Dictionary<string, string> ChildAllocator(out string description)
    {
        var environment = Allocator.CurrentEnvironment();
        if (OperatingSystem.IsLinux() && Allocator.PreloadForChildren(environment, Allocator.TcmallocCandidates(), File.Exists) is { } tcmalloc)
        {
            description = $"tcmalloc (LD_PRELOAD={tcmalloc}; {Allocator.Variable}=glibc or system to use glibc's)";
            return new Dictionary<string, string> { ["LD_PRELOAD"] = tcmalloc };
        }
        environment.TryGetValue(Allocator.Variable, out string? chosen);
        environment.TryGetValue("LD_PRELOAD", out string? preload);
        description = !OperatingSystem.IsLinux() ? "the system's"
            : Allocator.ReasonToLeaveAlone(environment) is { } reason ? $"as this environment makes it ({reason})"
            : Allocator.ParseMode(chosen) == Allocator.Mode.Glibc ? $"glibc's, tuned at start-up ({Allocator.Variable}={chosen})"
            : !string.IsNullOrWhiteSpace(preload) ? $"glibc's, tuned at start-up (LD_PRELOAD={preload} is kept, so no tcmalloc)"
            : $"glibc's, tuned at start-up (no tcmalloc found: apt-get install libtcmalloc-minimal4 for it; {Allocator.Variable}=system for glibc's defaults)";
        return [];
    }

    private const int Sigterm = 15;

    /// <summary>Restarts of one worker within a run; a worker that keeps dying is left dead.</summary>
    private const int MaxRestarts = 3;

    private static async Task StopWorkersAsync(IReadOnlyList<ChildProcess> workers) =>
        await Task.WhenAll(workers.Select(w => w.StopAsync(w.Terminate, TimeSpan.FromSeconds(15))));

    [GeneratedRegex(@"^worker listening on (\S+)")]
    private static partial Regex ListeningLine();
}
