using SimClr.Coordinator;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using SimClr.Worker;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Distributed.Tests;

/// <summary>Whole pre-training runs through the shared trainer with gRPC workers: checkpoints, resume, and the same
/// trajectory as one process wherever the BN grouping is the same.</summary>
public sealed class DistributedRunTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-dist-runs-").FullName;
    private readonly List<WorkerHost> _hosts = [];
    private readonly List<IReplicaEndpoint> _endpoints = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var e in _endpoints) e.Dispose();
        foreach (var h in _hosts) await h.DisposeAsync();
        Directory.Delete(_runs, recursive: true);
    }

    private RunConfig Config(string name) => new()
    {
        Seed = 9,
        Threads = 1,
        RunsFolder = _runs,
        RunName = name,
        Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 48, SyntheticTest: 16),
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
        Optimizer = new OptimizerOptions { Kind = OptimizerKind.Lars, BaseLearningRate = 0.5, Scaling = LearningRateScaling.None, TrustCoefficient = 0.02 },
        Epochs = 2,
        BatchSize = 16,
        WarmupEpochs = 1,
        KnnEveryEpochs = 2,
        KnnK = 5,
        CheckpointEverySteps = 0,
    };

    /// <summary>Fresh workers hosted in this process, joined through the same pool the coordinator command uses.</summary>
    private Func<ImageDataSet, IReadOnlyList<IReplicaEndpoint>> Workers(RunConfig config, int count) => train =>
    {
        var addresses = new List<Uri>();
        for (int w = 0; w < count; w++)
        {
            var host = WorkerHost.StartAsync(new WorkerOptions { WorkerId = $"w{w}" }).GetAwaiter().GetResult();
            _hosts.Add(host);
            addresses.Add(host.Address);
        }
        var endpoints = WorkerPool.JoinAsync(addresses, config, train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        _endpoints.AddRange(endpoints);
        return endpoints;
    };

    /// <summary>Asserts the two checkpoints' parameters and momentum agree; returns the largest difference seen,
    /// relative to each tensor's largest value.</summary>
    private double AssertSame(string expectedCheckpoint, string actualCheckpoint, double tolerance, double? momentumTolerance = null)
    {
        double worst = 0;
        using var a = Checkpoint.Load(expectedCheckpoint);
        using var b = Checkpoint.Load(actualCheckpoint);
        Assert.Equal(a.Model.Keys.Order(), b.Model.Keys.Order());
        Assert.Equal(a.Optimizer.Keys.Order(), b.Optimizer.Keys.Order());
        foreach (var (name, x, y) in a.Model.Select(kv => ("model " + kv.Key, kv.Value, b.Model[kv.Key]))
            .Concat(a.Optimizer.Select(kv => ("momentum " + kv.Key, kv.Value, b.Optimizer[kv.Key]))))
        {
            if (!x.is_floating_point() || name.Contains("running_", StringComparison.Ordinal)) continue; // BN running statistics are replica 0's own
            double scale = Math.Max(1e-6, x.abs().max().ToDouble());
            double diff = x.sub(y).abs().max().ToDouble();
            double allowed = name.StartsWith("momentum", StringComparison.Ordinal) ? momentumTolerance ?? tolerance : tolerance;
            Assert.True(diff <= allowed * scale, $"{name} differs by {diff} (scale {scale})");
            worst = Math.Max(worst, diff / scale);
        }
        output.WriteLine($"largest difference, relative to each tensor's largest value: {worst:E2}");
        return worst;
    }

    [Fact]
    public async Task A_distributed_run_stopped_and_resumed_ends_where_the_uninterrupted_one_does()
    {
        var straight = Config("straight");
        var whole = await StageRunner.RunAsync(straight, RunDirectory.Create(straight), SilentObserver.Instance, join: Workers(straight, 2));
        Assert.True(whole.Completed);
        Assert.InRange(whole.Metrics["knn_accuracy"], 0, 1); // the kNN monitor runs on the state taken from the workers

        var paused = Config("paused");
        var run = RunDirectory.Create(paused);
        var half = await StageRunner.RunAsync(paused, run, SilentObserver.Instance, stopAfterStep: 4, join: Workers(paused, 2));
        Assert.False(half.Completed);
        Assert.Equal(run.CheckpointPath(4), half.CheckpointPath);
        // new worker processes would start blank: the resumed run pushes the checkpoint's weights and momentum to them
        var resumed = await StageRunner.RunAsync(paused, RunDirectory.Open(run.Path), SilentObserver.Instance, resumeCheckpoint: half.CheckpointPath,
            join: Workers(paused, 2));
        Assert.True(resumed.Completed);
        AssertSame(whole.CheckpointPath!, resumed.CheckpointPath!, 1e-6);
    }

    [Fact]
    public async Task A_run_on_two_workers_writes_its_step_time_breakdown_with_the_workers_own_phases()
    {
        var config = Config("times") with { Epochs = 1, KnnEveryEpochs = 0, LogEverySteps = 1 };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await StageRunner.RunAsync(config, RunDirectory.Create(config), SilentObserver.Instance, join: Workers(config, 2));
        double wall = clock.Elapsed.TotalMilliseconds;
        Assert.True(result.Completed);
        var steps = File.ReadAllLines(Path.Combine(result.RunPath, "metrics.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(l => l.GetProperty("kind").GetString() == "step").ToList();
        Assert.Equal(3, steps.Count); // 48 images / 16
        double timed = 0;
        foreach (var record in steps)
        {
            output.WriteLine(record.ToString());
            double Get(string key) => record.GetProperty(key).GetDouble();
            double step = Get("time_step_ms"), sum = 0;
            foreach (string phase in StepTimes.CoordinatorPhases.Concat(StepTimes.ReplicaPhases))
            {
                Assert.True(Get($"time_{phase}_ms") >= 0, $"time_{phase}_ms");
                sum += Get($"time_{phase}_ms");
            }
            Assert.InRange(sum, step * 0.999 - 0.01, step * 1.001 + 0.01); // disjoint parts of the step, adding up to it
            // the workers' own phases came back over the wire (without them all of a call would count as transfer)
            foreach (string phase in new[] { "augment", "forward", "backward", "optimizer" }) Assert.True(Get($"time_{phase}_ms") > 0, $"time_{phase}_ms is 0");
            Assert.True(Get("time_transfer_ms") > 0, "gRPC calls cost something beyond the workers' own work");
            Assert.True(Get("time_ring_ms") > 0, "two gradients are summed by the workers' ring");
            Assert.Equal(0, Get("time_reduce_ms")); // and none through the coordinator
            Assert.InRange(Get("slowest_replica"), 0, 1);
            timed += step * Get("timed_steps");
        }
        Assert.True(timed <= wall, $"steps {timed} ms, run {wall} ms");
    }

    [Fact]
    public async Task Two_workers_in_local_BN_mode_follow_the_single_process_run_with_two_chunks_in_local_mode()
    {
        // The same BN batches either way: two groups of 8 images with both views (local mode); so the same maths.
        var single = Config("single") with { Batching = new BatchingOptions { Chunks = 2, BatchNorm = BatchNormGroups.Local } };
        var one = await StageRunner.RunAsync(single, RunDirectory.Create(single), SilentObserver.Instance);
        var split = Config("split") with { Batching = new BatchingOptions { BatchNorm = BatchNormGroups.Local } };
        var two = await StageRunner.RunAsync(split, RunDirectory.Create(split), SilentObserver.Instance, join: Workers(split, 2));
        AssertSame(one.CheckpointPath!, two.CheckpointPath!, 1e-4);
    }

    [Fact]
    public async Task Data_parallel_fine_tuning_on_two_workers_follows_the_single_process_fine_tuning()
    {
        var pre = Config("pre") with { Epochs = 1, KnnEveryEpochs = 0 };
        var pretrained = await StageRunner.RunAsync(pre, RunDirectory.Create(pre), SilentObserver.Instance);

        // Workers never read the pretrained file: the coordinator loads it and pushes the weights (LoadState).
        RunConfig Tune(string name) => Config(name) with { Stage = Stage.Finetune, Pretrained = pretrained.CheckpointPath, KnnEveryEpochs = 0 };
        var single = Tune("tune-single") with { Batching = new BatchingOptions { Chunks = 2 } }; // two BN batches of 8 images, as two workers
        var one = await StageRunner.RunAsync(single, RunDirectory.Create(single), SilentObserver.Instance);
        var split = Tune("tune-split");
        var two = await StageRunner.RunAsync(split, RunDirectory.Create(split), SilentObserver.Instance, join: Workers(split, 2));
        Assert.True(two.Completed);
        AssertSame(one.CheckpointPath!, two.CheckpointPath!, 1e-4);
        // (test accuracy may differ a little: eval-mode BN uses running statistics, here replica 0's, from half the images)
        Assert.InRange(two.Metrics["test_accuracy"], 0, 1);
        Assert.InRange(two.Metrics["train_accuracy"], 0, 1);
    }

    /// <summary>Calls actions after given steps and keeps the run's messages.</summary>
    private sealed class StepHook(params (long AfterStep, Action Action)[] actions) : ITrainingObserver
    {
        public StepHook(long afterStep, Action action)
            : this((afterStep, action))
        {
        }

        public List<string> Messages { get; } = [];

        public void Started(string what, long firstStep, long totalSteps) { }

        public void Step(StepReport report)
        {
            foreach (var (step, action) in actions)
                if (report.Step == step) action();
        }

        public void Message(string text) => Messages.Add(text);

        public void Finished() { }
    }

    /// <summary>
    /// A run on 3 workers, then the same run disturbed: <paramref name="hook"/> (given the index of the disturbed run's
    /// first worker host) watches it, and <paramref name="wrap"/> may replace its endpoints (first host, rank, endpoint).
    /// The disturbed run must complete with the parameters of the undisturbed one; returns the hook for its messages.
    /// The default configuration: BatchNorm on batch statistics, cross groups; the run's BN groups are fixed at its start
    /// (3 workers x 1 chunk) and spread over the survivors, and partial gradients are summed exactly.
    /// </summary>
    private async Task<StepHook> UndisturbedThenDisturbed(string name, Func<int, StepHook> hook, Func<int, int, IReplicaEndpoint, IReplicaEndpoint>? wrap = null)
    {
        RunConfig Fixed(string run) => Config(run) with { KnnEveryEpochs = 0 };
        var calm = Fixed("calm-" + name);
        var undisturbed = await StageRunner.RunAsync(calm, RunDirectory.Create(calm), SilentObserver.Instance, join: Workers(calm, 3));

        var rough = Fixed("rough-" + name);
        int first = _hosts.Count;
        var observer = hook(first);
        var survived = await StageRunner.RunAsync(rough, RunDirectory.Create(rough), observer,
            join: train => Workers(rough, 3)(train).Select((e, w) => wrap?.Invoke(first, w, e) ?? e).ToList());
        Assert.True(survived.Completed);
        AssertSame(undisturbed.CheckpointPath!, survived.CheckpointPath!, 1e-5);
        return observer;
    }

    [Fact]
    public async Task A_worker_lost_mid_run_is_survived_and_the_parameters_equal_an_undisturbed_run()
    {
        var hook = await UndisturbedThenDisturbed("lost",
            first => new StepHook(afterStep: 2, () => _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult())); // worker 1 of 3 goes away
        Assert.Contains(hook.Messages, m => m.Contains("lost worker 1", StringComparison.Ordinal) && m.Contains("redoing the step over 2 worker(s)", StringComparison.Ordinal));
    }

    /// <summary>A worker whose process goes away while it applies step <paramref name="step"/>: the others apply it.</summary>
    private sealed class LostWhileApplying(IReplicaEndpoint inner, long step, Action kill) : DelegatingEndpoint(inner)
    {
        public override Task<Timed<string?>> ApplyStepAsync(long at, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel)
        {
            if (at != step) return base.ApplyStepAsync(at, learningRate, gradient, agreement, cancel);
            kill();
            return Task.FromException<Timed<string?>>(new ReplicaLostException($"{Name}: gone while applying step {at}"));
        }
    }

    [Fact]
    public async Task A_worker_lost_while_applying_a_step_leaves_the_others_to_go_on_and_the_parameters_equal_an_undisturbed_run()
    {
        var hook = await UndisturbedThenDisturbed("applying", _ => new StepHook(), (first, w, endpoint) =>
            w == 1 ? new LostWhileApplying(endpoint, 2, () => _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult()) : endpoint);
        Assert.Contains(hook.Messages, m => m.Contains("while applying step 2", StringComparison.Ordinal) && m.Contains("the 2 other(s) applied it", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Under_fail_fast_a_lost_worker_stops_the_run_with_a_message_naming_it()
    {
        var config = Config("fragile") with { Faults = new FaultOptions { Policy = FaultPolicy.FailFast }, KnnEveryEpochs = 0 };
        int first = _hosts.Count;
        var hook = new StepHook(afterStep: 2, () => _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult());
        var run = RunDirectory.Create(config);
        var e = await Assert.ThrowsAsync<ReplicaLostException>(() => StageRunner.RunAsync(config, run, hook, join: Workers(config, 2)));
        Assert.Contains("lost worker 1", e.Message);
        Assert.Contains("fail-fast", e.Message);
        // nothing lost: the survivor's state after the 2 steps done is checkpointed, and the message says where
        Assert.Contains($"checkpoint {run.CheckpointPath(2)} (continue with --resume)", e.Message);
        using var saved = Checkpoint.Load(run.CheckpointPath(2));
        Assert.Equal(2, saved.Step);
    }

    /// <summary>A worker that tells the others an address where nothing listens: no ring can form with it.</summary>
    private sealed class WrongPeerAddress(IReplicaEndpoint inner) : DelegatingEndpoint(inner)
    {
        public override string? PeerAddress => "http://127.0.0.1:9"; // discard port
    }

    [Fact]
    public async Task A_ring_that_never_forms_stops_the_run_saying_what_to_do_with_a_worker_failure_exit_code()
    {
        var config = Config("no-ring") with { KnnEveryEpochs = 0, CheckpointEverySteps = 1 };
        var run = RunDirectory.Create(config);
        var hook = new StepHook(afterStep: 99, () => { });
        var e = await Assert.ThrowsAsync<SimClr.Core.Collectives.RingBrokenException>(() => StageRunner.RunAsync(config, run, hook,
            join: train => [.. Workers(config, 2)(train).Select((r, w) => w == 1 ? new WrongPeerAddress(r) : r)]));
        Assert.Contains("reduction.method to star", e.Message);
        Assert.Contains("Last checkpoint: none", e.Message); // it broke at the first step: nothing to resume from yet
        Assert.Equal(SimClr.Cli.Commands.ExitCodes.WorkerFailed, SimClr.Cli.Commands.ExitCodes.For(e)!.Value.Code);
        Assert.Equal(DataParallelStep.RingAttempts - 1, hook.Messages.Count(m => m.Contains("ring all-reduce broke", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Below_min_workers_the_run_waits_for_a_joiner_and_goes_on_or_stops_with_a_checkpoint_when_none_comes()
    {
        RunConfig Strict(string name, double wait) => Config(name) with
        {
            KnnEveryEpochs = 0,
            Faults = new FaultOptions { MinWorkers = 2, JoinWaitSeconds = wait, RejoinSeconds = 0.001 },
        };
        var calm = Strict("calm-wait", 30);
        var undisturbed = await StageRunner.RunAsync(calm, RunDirectory.Create(calm), SilentObserver.Instance, join: Workers(calm, 2));

        // worker 1 goes away after step 2 and is back a second later: the run waits for it, then goes on as if nothing happened
        var patient = Strict("patient", 30);
        int first = _hosts.Count;
        var hook = new StepHook(2, () =>
        {
            int port = _hosts[first + 1].Address.Port;
            _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult();
            _ = Task.Run(async () =>
            {
                await Task.Delay(1000);
                var again = await WorkerHost.StartAsync(new WorkerOptions { WorkerId = "w1-later", Port = port });
                lock (_hosts) _hosts.Add(again);
            });
        });
        var result = await StageRunner.RunAsync(patient, RunDirectory.Create(patient), hook, join: Workers(patient, 2));
        Assert.True(result.Completed);
        Assert.Contains(hook.Messages, m => m.Contains("below faults.minWorkers (2): waiting up to 30 s", StringComparison.Ordinal));
        Assert.Contains(hook.Messages, m => m.Contains("rejoined at step 2: 2 worker(s)", StringComparison.Ordinal));
        AssertSame(undisturbed.CheckpointPath!, result.CheckpointPath!, 1e-5);

        // nobody comes back: the run stops after the wait with the survivor's state checkpointed
        var impatient = Strict("impatient", 1);
        first = _hosts.Count;
        var quiet = new StepHook(2, () => _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult());
        var run = RunDirectory.Create(impatient);
        var e = await Assert.ThrowsAsync<ReplicaLostException>(() => StageRunner.RunAsync(impatient, run, quiet, join: Workers(impatient, 2)));
        Assert.Contains(quiet.Messages, m => m.Contains("no worker came back within 1 s", StringComparison.Ordinal));
        Assert.Contains("faults.minWorkers is 2", e.Message);
        Assert.Contains($"checkpoint {run.CheckpointPath(2)}", e.Message);
    }

    [Fact]
    public async Task A_lost_worker_that_comes_back_rejoins_and_the_parameters_equal_an_undisturbed_run()
    {
        RunConfig Fixed(string name) => Config(name) with
        {
            KnnEveryEpochs = 0,
            Faults = new FaultOptions { RejoinSeconds = 0.001 },
        };
        var calm = Fixed("calm-rejoin");
        var undisturbed = await StageRunner.RunAsync(calm, RunDirectory.Create(calm), SilentObserver.Instance, join: Workers(calm, 3));

        var rough = Fixed("rough-rejoin");
        int first = _hosts.Count;
        int port = 0;
        var hook = new StepHook(
            (2, () =>
            {
                port = _hosts[first + 1].Address.Port;
                _hosts[first + 1].DisposeAsync().AsTask().GetAwaiter().GetResult(); // worker 1 of 3 goes away ...
            }
        ),
            (3, () => _hosts.Add(WorkerHost.StartAsync(new WorkerOptions { WorkerId = "w1-again", Port = port }).GetAwaiter().GetResult()))); // ... and comes back
        var result = await StageRunner.RunAsync(rough, RunDirectory.Create(rough), hook, join: Workers(rough, 3));
        Assert.True(result.Completed);
        Assert.Contains(hook.Messages, m => m.Contains("lost worker 1", StringComparison.Ordinal));
        Assert.Contains(hook.Messages, m => m.Contains("worker 1", StringComparison.Ordinal) && m.Contains("rejoined at step", StringComparison.Ordinal) && m.Contains(": 3 worker(s)", StringComparison.Ordinal));
        AssertSame(undisturbed.CheckpointPath!, result.CheckpointPath!, 1e-5);
    }
}
