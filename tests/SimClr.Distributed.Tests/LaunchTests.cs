using System.Diagnostics;
using System.Text.RegularExpressions;
using SimClr.Core.Checkpoints;
using TorchSharp;

namespace SimClr.Distributed.Tests;

/// <summary>
/// `simclr launch` as a user runs it: real processes (the launcher, 2 workers, the coordinator) on loopback, a tiny
/// net on CPU. Every test checks by PID that no process is left behind.
/// </summary>
public sealed partial class LaunchTests(LaunchTests.UndisturbedRun undisturbed, Xunit.Abstractions.ITestOutputHelper output)
    : IDisposable, IClassFixture<LaunchTests.UndisturbedRun>
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-launch-").FullName;

    /// <summary>Epochs of the runs with faults, and of the undisturbed run they are compared with (8 steps each).</summary>
    private const int FaultEpochs = 10;

    /// <summary>The undisturbed run with 3 workers that the runs with faults must end equal to; launched once, on first use.</summary>
    public sealed class UndisturbedRun : IDisposable
    {
        private readonly string _folder = Directory.CreateTempSubdirectory("simclr-launch-calm-").FullName;
        private readonly SemaphoreSlim _gate = new(1, 1);
        private string? _checkpoint;

        public async Task<string> CheckpointAsync()
        {
            await _gate.WaitAsync();
            try
            {
                if (_checkpoint is not null) return _checkpoint;
                using var launcher = new Launcher("launch", "--config", WriteConfig(_folder, FaultEpochs), "--workers", "3");
                Assert.True(launcher.Process.WaitForExit(TimeSpan.FromMinutes(5)), launcher.Output);
                launcher.Process.WaitForExit();
                Assert.True(launcher.Process.ExitCode == 0, launcher.Output);
                return _checkpoint = LastCheckpoint(_folder);
            }
            finally
            {
                _gate.Release();
            }
        }

        public void Dispose()
        {
            _gate.Dispose();
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Waits until the launched run has logged step <paramref name="step"/> in its metrics (every 4 steps).</summary>
    private async Task<bool> WaitForStepAsync(Launcher launcher, long step, TimeSpan timeout)
    {
        string metrics = Path.Combine(_folder, "runs", "launched", "metrics.jsonl");
        string record = $"\"kind\":\"step\",\"step\":{step},";
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until && !launcher.Process.HasExited)
        {
            try
            {
                using var reader = new StreamReader(new FileStream(metrics, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
                if ((await reader.ReadToEndAsync()).Contains(record, StringComparison.Ordinal)) return true;
            }
            catch (IOException)
            {
            }
            await Task.Delay(50);
        }
        return false;
    }

    private static string LastCheckpoint(string folder) => Directory.GetFiles(Path.Combine(folder, "runs", "launched", "checkpoints"), "*.safetensors").Order().Last();

    /// <summary>The parameters and momentum of two checkpoints agree to <paramref name="tolerance"/> relative to each
    /// tensor's largest value (BN running statistics are replica 0's own and not compared).</summary>
    private void AssertSameParameters(string expected, string actual, double tolerance)
    {
        using var a = Checkpoint.Load(expected);
        using var b = Checkpoint.Load(actual);
        Assert.Equal(a.Step, b.Step);
        double worst = 0;
        foreach (var (name, x, y) in a.Model.Select(kv => ("model " + kv.Key, kv.Value, b.Model[kv.Key]))
            .Concat(a.Optimizer.Select(kv => ("momentum " + kv.Key, kv.Value, b.Optimizer[kv.Key]))))
        {
            if (!x.is_floating_point() || name.Contains("running_", StringComparison.Ordinal)) continue;
            double scale = Math.Max(1e-6, x.abs().max().ToDouble());
            double diff = x.sub(y).abs().max().ToDouble();
            worst = Math.Max(worst, diff / scale);
            Assert.True(diff <= tolerance * scale, $"{name} differs by {diff} (scale {scale})");
        }
        output.WriteLine($"largest difference from the undisturbed run, relative to each tensor's largest value: {worst:E2}");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private string Config(int epochs) => WriteConfig(_folder, epochs);

    private static string WriteConfig(string folder, int epochs)
    {
        string path = Path.Combine(folder, "tiny.json");
        File.WriteAllText(path, $$"""
        {
          "stage": "pretrain", "seed": 3, "threads": 1,
          "data": { "name": "synthetic-shapes", "syntheticTrain": 256, "syntheticTest": 64 },
          "model": { "width": 0.125, "projectionHidden": 32, "projectionDim": 16 },
          "optimizer": { "kind": "lars", "baseLearningRate": 0.5, "scaling": "linear", "trustCoefficient": 0.02 },
          "epochs": {{epochs}}, "batchSize": 32, "warmupEpochs": 1, "knnEveryEpochs": 0,
          "checkpointEverySteps": 8, "logEverySteps": 4, "runsFolder": "{{Path.Combine(folder, "runs")}}", "runName": "launched"
        }
        """);
        return path;
    }

    /// <summary>The launcher, started as a user would start it, with its merged output collected line by line.</summary>
    private sealed class Launcher : IDisposable
    {
        public readonly Process Process;
        public readonly List<string> Lines = [];

        /// <summary>
        /// simclr started as from a terminal: SIGINT at its default disposition. A test runner that is itself a
        /// script's background job (`bash .ci/run &amp;`) has SIGINT ignored, and its children inherit that, so a SIGINT
        /// test would see the launcher ignore it; coreutils' env resets it before simclr starts (same PID: env execs).
        /// </summary>
        public Launcher(params string[] args)
            : this(new ProcessStartInfo("env"), ["--default-signal=INT", Simclr, .. args])
        {
        }

        private Launcher(ProcessStartInfo info, IEnumerable<string> args)
        {
            info.RedirectStandardOutput = true;
            info.RedirectStandardError = true;
            info.UseShellExecute = false;
            foreach (string a in args) info.ArgumentList.Add(a);
            Process = new Process { StartInfo = info };
            Process.OutputDataReceived += (_, e) => Add(e.Data);
            Process.ErrorDataReceived += (_, e) => Add(e.Data);
            Process.Start();
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }

        private static string Simclr => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "simclr.exe" : "simclr");

        /// <summary>
        /// simclr started the way a script starts a long job: `simclr ... &amp;` in a non-interactive bash, which starts
        /// background commands with SIGINT and SIGQUIT ignored (and the launcher's children inherit that). The script
        /// prints the launcher's PID first, then waits for it and exits with its exit code.
        /// </summary>
        public static Launcher InBackgroundOfScript(params string[] args)
        {
            string quoted = string.Join(' ', args.Prepend(Simclr).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
            return new Launcher(new ProcessStartInfo("bash"), ["-c", $"{quoted} & echo \"script: launcher pid $!\"; wait $!"]);
        }

        /// <summary>The launcher's PID: its own, or the one the script printed.</summary>
        public int LauncherPid
        {
            get
            {
                lock (Lines)
                {
                    return Lines.Select(l => ScriptPidLine().Match(l)).FirstOrDefault(m => m.Success) is { } m
                        ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : Process.Id;
                }
            }
        }

        private void Add(string? line)
        {
            if (line is null) return;
            lock (Lines) Lines.Add(line);
        }

        public string Output
        {
            get
            {
                lock (Lines) return string.Join('\n', Lines);
            }
        }

        public async Task<bool> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
        {
            var until = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < until && !Process.HasExited)
            {
                lock (Lines)
                {
                    if (Lines.Any(match)) return true;
                }
                await Task.Delay(100);
            }
            lock (Lines) return Lines.Any(match);
        }

        /// <summary>Every child the launcher reported starting (workers and coordinator).</summary>
        public List<int> ChildPids()
        {
            lock (Lines) return Lines.Select(l => ChildLine().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.Dispose();
        }
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static async Task AssertAllGoneAsync(IEnumerable<int> pids, TimeSpan within)
    {
        var until = DateTime.UtcNow + within;
        var list = pids.ToList();
        while (list.Any(Alive) && DateTime.UtcNow < until) await Task.Delay(100);
        Assert.DoesNotContain(list, Alive);
    }

    private static void Signal(int pid, string signal) => Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();

    [Fact]
    public async Task Launch_runs_two_workers_to_the_end_and_finetune_consumes_its_checkpoint()
    {
        using var launcher = new Launcher("launch", "--config", Config(epochs: 2), "--workers", "2", "--devices", "cpu");
        Assert.True(launcher.Process.WaitForExit(TimeSpan.FromMinutes(5)), "launch did not finish in 5 minutes:\n" + launcher.Output);
        launcher.Process.WaitForExit();
        Assert.True(launcher.Process.ExitCode == 0, launcher.Output);
        var pids = launcher.ChildPids();
        Assert.Equal(3, pids.Count); // 2 workers + the coordinator
        await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(5));
        Assert.Contains("[coord] each step: 2 BatchNorm groups (cross) over 2 replica(s), kept if workers are lost or rejoin", launcher.Output);
        Assert.Contains("[worker1] worker stopped; peak RSS", launcher.Output);
        Assert.Contains("[coord] coordinator health on http://127.0.0.1:", launcher.Output);

        string run = Path.Combine(_folder, "runs", "launched");
        Assert.True(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length >= 4);
        string checkpoint = Directory.GetFiles(Path.Combine(run, "checkpoints")).Order().Last();
        using (var loaded = Checkpoint.Load(checkpoint))
        {
            Assert.Equal(16, loaded.Step); // 256 images / 32 = 8 steps per epoch, 2 epochs
            Assert.NotEmpty(loaded.Optimizer); // momentum came back from the workers with the weights
        }

        // the user's "fine-tune afterwards": the single-process finetune stage starts from the launched run's checkpoint
        using var finetune = new Launcher("finetune", "--plain", "--pretrained", checkpoint,
            "--set", "data.name=synthetic-shapes", "--set", "data.syntheticTrain=256", "--set", "data.syntheticTest=64",
            "--set", "model.width=0.125", "--set", "model.projectionHidden=32", "--set", "model.projectionDim=16", "--set", "epochs=1",
            "--set", "batchSize=32", "--set", $"runsFolder={Path.Combine(_folder, "runs")}", "--set", "runName=tuned", "--set", "threads=1");
        Assert.True(finetune.Process.WaitForExit(TimeSpan.FromMinutes(3)), finetune.Output);
        finetune.Process.WaitForExit();
        Assert.True(finetune.Process.ExitCode == 0, finetune.Output);
        Assert.Contains("test_accuracy", finetune.Output);
    }

    [Fact]
    public async Task SIGINT_to_the_launcher_writes_a_checkpoint_and_leaves_no_process_running()
    {
        using var launcher = new Launcher("launch", "--config", Config(epochs: 500), "--workers", "2");
        Assert.True(await launcher.WaitForLineAsync(l => l.Contains("[coord] pretrain step", StringComparison.Ordinal), TimeSpan.FromMinutes(2)), launcher.Output);
        var pids = launcher.ChildPids();
        Assert.Equal(3, pids.Count);
        // every process of the run answers the standard health check: the workers and the coordinator
        var health = launcher.Output.Split('\n').Select(l => HealthLine().Match(l)).Where(m => m.Success).Select(m => new Uri(m.Groups[1].Value)).ToList();
        Assert.Equal(3, health.Count);
        foreach (var address in health)
        {
            using var client = new SimClr.Coordinator.WorkerClient(address, TimeSpan.FromSeconds(10));
            await SimClr.Coordinator.WorkerPool.WaitHealthyAsync(client, TimeSpan.FromSeconds(10));
        }
        Signal(launcher.Process.Id, "INT");
        Assert.True(launcher.Process.WaitForExit(TimeSpan.FromMinutes(2)), "the launcher did not stop after SIGINT:\n" + launcher.Output);
        launcher.Process.WaitForExit();
        Assert.True(launcher.Process.ExitCode == 130, launcher.Output);
        await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(5));
        Assert.Contains("[coord] stopped at step", launcher.Output);
        string checkpoint = Directory.GetFiles(Path.Combine(_folder, "runs", "launched", "checkpoints")).Order().Last();
        using var loaded = Checkpoint.Load(checkpoint);
        Assert.True(loaded.Step > 0);
    }

    [Fact]
    public async Task SIGTERM_to_a_launcher_started_in_the_background_of_a_script_stops_it_with_a_checkpoint_and_exit_code_130()
    {
        using var launcher = Launcher.InBackgroundOfScript("launch", "--config", Config(epochs: 500), "--workers", "2");
        Assert.True(await launcher.WaitForLineAsync(l => l.Contains("[coord] pretrain step", StringComparison.Ordinal), TimeSpan.FromMinutes(2)), launcher.Output);
        var pids = launcher.ChildPids();
        Assert.Equal(3, pids.Count);
        int pid = launcher.LauncherPid;
        Assert.NotEqual(launcher.Process.Id, pid); // the script's background job, not bash
        Assert.True(IgnoresSigint(pid), "bash should start its background job with SIGINT ignored");
        Signal(pid, "TERM");
        Assert.True(launcher.Process.WaitForExit(TimeSpan.FromSeconds(60)), "the launcher did not stop within 60 s of SIGTERM:\n" + launcher.Output);
        launcher.Process.WaitForExit();
        Assert.True(launcher.Process.ExitCode == 130, $"exit code {launcher.Process.ExitCode}:\n{launcher.Output}");
        await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(5));
        Assert.Contains("[coord] stopped at step", launcher.Output);
        using var loaded = Checkpoint.Load(LastCheckpoint(_folder));
        Assert.True(loaded.Step > 0);
    }

    /// <summary>Whether SIGINT is in the process's ignored signals (SigIgn in /proc/PID/status, a hexadecimal mask).</summary>
    private static bool IgnoresSigint(int pid)
    {
        string mask = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))["SigIgn:".Length..].Trim();
        return (ulong.Parse(mask, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & (1UL << (2 - 1))) != 0;
    }

    [Theory]
    [InlineData("KILL")] // the process dies: its connection breaks; the launcher restarts it and it rejoins
    [InlineData("STOP")] // the process hangs: only the heartbeat notices
    public async Task A_worker_lost_at_a_random_step_is_survived_and_the_run_ends_equal_to_an_undisturbed_one(string signal)
    {
        string reference = await undisturbed.CheckpointAsync();
        using var launcher = new Launcher("launch", "--config", Config(FaultEpochs), "--workers", "3", "--set", "faults.heartbeatSeconds=1",
            "--set", "faults.rejoinSeconds=0.5");
        int at = 4 * Random.Shared.Next(1, 12); // progress lines come every 4 steps
        output.WriteLine($"worker1 gets SIG{signal} after step {at}");
        Assert.True(await WaitForStepAsync(launcher, at, TimeSpan.FromMinutes(3)), launcher.Output);
        var pids = launcher.ChildPids();
        Signal(pids[1], signal); // worker1
        Assert.True(launcher.Process.WaitForExit(TimeSpan.FromMinutes(4)), launcher.Output);
        launcher.Process.WaitForExit();
        Assert.True(launcher.Process.ExitCode == 0, launcher.Output);
        Assert.Contains("redoing the step over 2 worker(s), same batch, views and BN groups", launcher.Output);
        if (signal == "STOP")
        {
            Assert.Contains("no answer to 3 health checks", launcher.Output);
        }
        else
        {
            // the launcher starts the dead worker again on its port, and the coordinator takes it back between steps
            Assert.Contains("[launch] worker1: restarted on port", launcher.Output);
            Assert.Contains("rejoined at step", launcher.Output);
        }
        AssertSameParameters(reference, LastCheckpoint(_folder), 1e-5); // the run finished, and nothing of it changed
        await AssertAllGoneAsync(launcher.ChildPids(), TimeSpan.FromSeconds(5)); // the restarted worker too
    }

    [Fact]
    public async Task A_coordinator_killed_mid_run_resumes_from_its_last_checkpoint_and_ends_equal_to_an_undisturbed_run()
    {
        string reference = await undisturbed.CheckpointAsync();
        using (var first = new Launcher("launch", "--config", Config(FaultEpochs), "--workers", "3"))
        {
            Assert.True(await WaitForStepAsync(first, 20, TimeSpan.FromMinutes(3)), first.Output);
            var pids = first.ChildPids();
            Signal(pids[^1], "KILL"); // the coordinator (started after the workers): no checkpoint, no goodbye
            Assert.True(first.Process.WaitForExit(TimeSpan.FromMinutes(1)), first.Output);
            first.Process.WaitForExit();
            Assert.NotEqual(0, first.Process.ExitCode);
            await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(20)); // the launcher stops the workers
        }
        string run = Path.Combine(_folder, "runs", "launched");
        using (var last = Checkpoint.Load(LastCheckpoint(_folder)))
            Assert.InRange(last.Step, 16, 72); // written every 8 steps (16, unless the kill came late); the steps after it are redone

        using var again = new Launcher("launch", "--resume", run, "--workers", "3");
        Assert.True(again.Process.WaitForExit(TimeSpan.FromMinutes(5)), again.Output);
        again.Process.WaitForExit();
        Assert.True(again.Process.ExitCode == 0, again.Output);
        AssertSameParameters(reference, LastCheckpoint(_folder), 1e-5);
        await AssertAllGoneAsync(again.ChildPids(), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Under_fail_fast_a_killed_worker_stops_the_run_with_a_clear_message_and_no_process_left()
    {
        using var launcher = new Launcher("launch", "--config", Config(epochs: 500), "--workers", "2", "--set", "faults.policy=fail-fast");
        Assert.True(await launcher.WaitForLineAsync(l => l.Contains("[coord] pretrain step", StringComparison.Ordinal), TimeSpan.FromMinutes(2)), launcher.Output);
        var pids = launcher.ChildPids();
        Signal(pids[1], "KILL"); // worker1
        Assert.True(launcher.Process.WaitForExit(TimeSpan.FromMinutes(2)), launcher.Output);
        launcher.Process.WaitForExit();
        Assert.Equal(4, launcher.Process.ExitCode);
        Assert.Contains("[launch] worker1 exited", launcher.Output);
        Assert.Contains("lost worker 1", launcher.Output);
        await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Children_stop_by_themselves_when_the_launcher_is_killed()
    {
        using var launcher = new Launcher("launch", "--config", Config(epochs: 500), "--workers", "2");
        Assert.True(await launcher.WaitForLineAsync(l => l.Contains("[launch] coordinator: pid", StringComparison.Ordinal), TimeSpan.FromMinutes(2)), launcher.Output);
        var pids = launcher.ChildPids();
        Signal(launcher.Process.Id, "KILL"); // no chance to clean up: the children's own watch must end them
        await AssertAllGoneAsync(pids, TimeSpan.FromSeconds(30));
    }

    [GeneratedRegex(@"^script: launcher pid (\d+)")]
    private static partial Regex ScriptPidLine();

    [GeneratedRegex(@"^\[(?:worker\d+|coord)\] (?:worker listening on|coordinator health on) (\S+)")]
    private static partial Regex HealthLine();

    [GeneratedRegex(@"^\[launch\] (?:worker\d+|coordinator): (?:restarted .*, )?pid (\d+)")]
    private static partial Regex ChildLine();
}
