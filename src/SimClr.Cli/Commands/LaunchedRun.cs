using System.Text.RegularExpressions;
using SimClr.Cli.Processes;

namespace SimClr.Cli.Commands;

/// <summary>
/// The processes of one `simclr launch`: N workers, each on a free port the OS picks (read back from the worker's first
/// line), then the coordinator; their output merged with prefixes; a worker that dies restarted on its port; everything
/// stopped in order when the coordinator ends or on a signal (<see cref="Signal"/>), and killed by <see cref="Dispose"/>.
/// </summary>
internal sealed partial class LaunchedRun(IReadOnlyList<string> devices, int threadsPerWorker) : IDisposable
{
    private const int Sigterm = 15;

    /// <summary>Restarts of one worker within a run; a worker that keeps dying is left dead.</summary>
    private const int MaxRestarts = 3;

    private static readonly Lock OutputGate = new();
    private readonly string _me = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
    private readonly List<ChildProcess> _children = [];
    private readonly TaskCompletionSource _interrupted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Dictionary<string, string> _environment = [];
    private int _signals;

    /// <summary>One line of the launcher or a launched process, with its prefix; lines of all of them never interleave.</summary>
    private static void Write(string prefix, string line, bool error = false)
    {
        lock (OutputGate) (error ? Console.Error : Console.Out).WriteLine($"[{prefix}] {line}");
    }

    /// <summary>Ctrl-C or SIGTERM: the first stops the run in order (the coordinator writes a checkpoint); the next kills every process now.</summary>
    public void Signal()
    {
        if (Interlocked.Increment(ref _signals) == 1)
        {
            Write("launch", "stopping: the coordinator writes a checkpoint, then the workers stop (again to kill everything now)");
            _interrupted.TrySetResult();
        }
        else
        {
            Write("launch", "killing every process now");
            lock (_children) foreach (var c in _children) c.Kill();
        }
    }

    /// <summary>Runs the workers and the coordinator (with <paramref name="passOn"/>) to the end; the coordinator's exit code, or the launcher's own.</summary>
    public async Task<int> RunAsync(IReadOnlyList<string> passOn)
    {
        _environment = ChildEnvironment();
        // 1. workers, each on a free port the OS picks; the port comes back in the worker's first line
        var (urls, failed) = await StartWorkersAsync();
        if (urls is null) return failed;

        // 2. the coordinator, which waits for every worker's health, joins them and runs the stage
        var coordinatorArgs = new List<string> { "coordinator", "--workers", string.Join(",", urls), "--plain", "--health-port", "0", "--parent-pid", _me };
        coordinatorArgs.AddRange(passOn);
        var coordinator = ChildProcess.StartSelf("coord", coordinatorArgs, (c, line) => Write(c.Name, line), _environment);
        lock (_children) _children.Add(coordinator);
        Write("launch", $"coordinator: pid {coordinator.Pid}");

        // 3. wait for the end, a failure, or a signal
        var running = _children.Take(devices.Count).ToList();
        int code = await SuperviseAsync(coordinator, running, urls);
        await StopWorkersAsync(running);
        Write("launch", code == ExitCodes.Success ? "done" : $"finished with exit code {code}");
        return code;
    }

    /// <summary>
    /// Every worker's address once it listens; none, with the launcher's exit code, when one exited or did not listen
    /// within 2 minutes, or a signal came first (the workers are stopped then).
    /// </summary>
    private async Task<(List<string>? Urls, int Failed)> StartWorkersAsync()
    {
        var addresses = new TaskCompletionSource<string>[devices.Count];
        for (int w = 0; w < devices.Count; w++)
        {
            addresses[w] = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var child = StartWorker(w, 0, addresses[w]);
            lock (_children) _children.Add(child);
            Write("launch", $"worker{w}: pid {child.Pid}, device {devices[w]}" + (devices[w] == "cpu" ? $", {threadsPerWorker} threads" : ""));
        }
        var urls = new List<string>();
        for (int w = 0; w < devices.Count; w++)
        {
            var worker = _children[w];
            var first = await Task.WhenAny(addresses[w].Task, worker.Exited, _interrupted.Task, Task.Delay(TimeSpan.FromMinutes(2)));
            if (first != addresses[w].Task)
            {
                string why = first == worker.Exited ? $"exited with code {worker.Exited.Result} before listening"
                    : first == _interrupted.Task ? "interrupted while starting" : "did not start listening within 2 minutes";
                Write("launch", $"{worker.Name} {why}; stopping", error: true);
                await StopWorkersAsync(_children);
                return (null, first == _interrupted.Task ? ExitCodes.Interrupted : ExitCodes.WorkerFailed);
            }
            urls.Add(addresses[w].Task.Result);
        }
        return (urls, ExitCodes.Success);
    }

    /// <summary>Worker <paramref name="w"/> on <paramref name="port"/> (0: any free one); <paramref name="address"/> gets the address it prints.</summary>
    private ChildProcess StartWorker(int w, int port, TaskCompletionSource<string>? address)
    {
        string[] args = ["worker", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--device", devices[w], "--parent-pid", _me];
        if (devices[w] == "cpu") args = [.. args, "--threads", threadsPerWorker.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        return ChildProcess.StartSelf($"worker{w}", args, (c, line) =>
        {
            if (address is { Task.IsCompleted: false } && ListeningLine().Match(line) is { Success: true } m) address.TrySetResult(m.Groups[1].Value);
            Write(c.Name, line);
        }, _environment);
    }

    /// <summary>Waits for the coordinator to end, or stops it on a signal; restarts a worker that dies meanwhile. The run's exit code.</summary>
    private async Task<int> SuperviseAsync(ChildProcess coordinator, List<ChildProcess> running, IReadOnlyList<string> urls)
    {
        var restarts = new int[devices.Count];
        while (true)
        {
            var done = await Task.WhenAny([coordinator.Exited, _interrupted.Task, .. running.Select(w => (Task)w.Exited)]);
            if (done == coordinator.Exited) return coordinator.Exited.Result;
            if (done == _interrupted.Task)
            {
                // SIGTERM, not SIGINT, whichever signal the launcher got: a script's background job (`simclr launch &`)
                // starts with SIGINT ignored, and the children inherit that, so a forwarded SIGINT would be lost and
                // the run would go on; the coordinator handles SIGTERM as Ctrl-C (a checkpoint, then exit 130)
                int code = await coordinator.StopAsync(coordinator.Terminate, TimeSpan.FromMinutes(5));
                return code == 128 + Sigterm ? ExitCodes.Interrupted : code; // stopped by the signal itself, before its handler was installed
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
                lock (_children) _children.Add(again);
                running.Add(again);
                Write("launch", $"{again.Name}: restarted on port {port} (restart {restarts[index]} of {MaxRestarts}), pid {again.Pid}");
            }
        }
    }

    /// <summary>
    /// The environment of the launched processes, logged: for their malloc, LD_PRELOAD of tcmalloc where it is
    /// installed and neither SIMCLR_MALLOC nor LD_PRELOAD says otherwise (with glibc's malloc each full-width step maps
    /// and faults in its large blocks anew; see Allocator), else nothing, and each process tunes glibc's malloc itself
    /// at start-up; and their JIT (<see cref="Jit"/>).
    /// </summary>
    private static Dictionary<string, string> ChildEnvironment()
    {
        var environment = ChildAllocator(out string allocator);
        Write("launch", $"allocator of the workers and the coordinator: {allocator}");
        if (Jit.ForLaunchedProcesses(Allocator.CurrentEnvironment()) is { } jit)
        {
            environment[jit.Key] = jit.Value;
            Write("launch", $"JIT of the workers and the coordinator: everything optimised at its first call ({jit.Key}={jit.Value}; set it yourself to choose)");
        }
        return environment;
    }

    /// <summary>LD_PRELOAD of tcmalloc for the launched processes, or nothing; <paramref name="description"/> says which malloc they get and why.</summary>
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

    private static async Task StopWorkersAsync(IReadOnlyList<ChildProcess> workers) =>
        await Task.WhenAll(workers.Select(w => w.StopAsync(w.Terminate, TimeSpan.FromSeconds(15))));

    /// <summary>Kills whatever is still running: no orphans.</summary>
    public void Dispose()
    {
        lock (_children)
        {
            foreach (var c in _children) c.Dispose();
        }
    }

    [GeneratedRegex(@"^worker listening on (\S+)")]
    private static partial Regex ListeningLine();
}
