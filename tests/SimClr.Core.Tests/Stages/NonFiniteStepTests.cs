using SimClr.Core.Checkpoints;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Replica;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Stages;

/// <summary>A NaN or infinite gradient never reaches the weights: the step is skipped (counted, up to a limit) or the run stops.</summary>
public sealed class NonFiniteStepTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-nonfinite-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    /// <summary>A replica in this process whose gradient is poisoned with NaN at the given steps: for one replica in its
    /// parameters' gradients (the replica must refuse its own step), for several in the gradient it returns (the
    /// coordinator must refuse the sum).</summary>
    private sealed class Poisoned(LocalReplicaEndpoint inner, params long[] steps) : IReplicaEndpoint
    {
        private long _step;

        public string Name => inner.Name;

        public bool InProcess => inner.InProcess;

        public Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel)
        {
            _step = work.Step;
            return inner.ForwardAsync(work, cancel);
        }

        public async Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel)
        {
            var (local, times) = await inner.BackwardAsync(gradient, returnGradient, cancel);
            if (!steps.Contains(_step)) return new(local, times);
            if (local is null)
            {
                using (no_grad()) inner.Replica.Parameters[3].Parameter.grad!.fill_(float.NaN);
                return new(null, times);
            }
            var data = local.Data.ToArray();
            BitConverter.GetBytes(local.Float64 ? BitConverter.DoubleToInt64Bits(double.PositiveInfinity) : BitConverter.SingleToInt32Bits(float.NaN)).CopyTo(data, 40);
            return new(local with { Data = data }, times);
        }

        public Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel) =>
            inner.ApplyStepAsync(step, learningRate, gradient, agreement, cancel);

        public Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel) => inner.SaveStateAsync(cancel);

        public Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel) => inner.LoadStateAsync(state, cancel);

        public Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Task.FromResult<IReplicaEndpoint?>(null);

        public void Dispose() => inner.Dispose();
    }

    private RunConfig Config(string name, FaultOptions faults) => TinyRuns.Config(Stage.Pretrain, _runs, name) with
    {
        KnnEveryEpochs = 0,
        CheckpointEverySteps = 0,
        Faults = faults,
    };

    private static Func<ImageDataSet, IReadOnlyList<IReplicaEndpoint>> Replicas(RunConfig config, int count, params long[] poisonedSteps) => train =>
        Enumerable.Range(0, count).Select(r => (IReplicaEndpoint)new Poisoned(
            new LocalReplicaEndpoint(ReplicaFactory.Build(config, train.Channels, train.Mean, train.Std, CPU, train.ClassNames.Count), $"r{r}"),
            r == count - 1 ? poisonedSteps : [])).ToList();

    private sealed class Messages : ITrainingObserver
    {
        public List<string> Lines { get; } = [];

        public void Started(string what, long firstStep, long totalSteps) { }

        public void Step(StepReport report) { }

        public void Message(string text) => Lines.Add(text);

        public void Finished() { }
    }

    [Theory]
    [InlineData(1)] // the replica refuses its own step
    [InlineData(2)] // the coordinator refuses the summed gradient
    public async Task Poisoned_steps_are_skipped_and_counted_and_never_reach_the_weights(int replicas)
    {
        var skip = Config($"skip{replicas}", new FaultOptions { MaxSkippedSteps = 2 });
        var observer = new Messages();
        var result = await StageRunner.RunAsync(skip, RunDirectory.Create(skip), observer, join: Replicas(skip, replicas, 1, 4));
        Assert.True(result.Completed);
        Assert.Equal(2, observer.Lines.Count(l => l.Contains("skipped: the", StringComparison.Ordinal) && l.Contains("the weights are unchanged", StringComparison.Ordinal)));
        string metrics = File.ReadAllText(Path.Combine(result.RunPath, "metrics.jsonl"));
        Assert.Contains("\"kind\":\"skip\",\"step\":5,", metrics);
        Assert.Contains("\"skipped_steps\":2", metrics);
        using var last = Checkpoint.Load(result.CheckpointPath!);
        Assert.All(last.Model.Values.Where(t => t.is_floating_point()), t => Assert.True(isfinite(t).all().item<bool>()));
    }

    [Fact]
    public async Task The_skipped_step_budget_is_the_runs_and_carries_over_a_resume()
    {
        // one skip allowed: step 1 is skipped before the pause at step 3, step 4 after the resume is one too many
        var limited = Config("budget", new FaultOptions { MaxSkippedSteps = 1 });
        var run = RunDirectory.Create(limited);
        var paused = await StageRunner.RunAsync(limited, run, new Messages(), stopAfterStep: 3, join: Replicas(limited, 1, 1, 4));
        Assert.False(paused.Completed);
        using (var checkpoint = Checkpoint.Load(paused.CheckpointPath!)) Assert.Equal("1", checkpoint.Extra[CheckpointKeeper.SkippedStepsKey]);
        var e = await Assert.ThrowsAsync<TrainingDivergedException>(() => StageRunner.RunAsync(limited, RunDirectory.Open(run.Path), new Messages(),
            resumeCheckpoint: paused.CheckpointPath, join: Replicas(limited, 1, 1, 4)));
        Assert.Contains("at step 4", e.Message);
        Assert.Contains("2 skipped steps, over faults.maxSkippedSteps (1)", e.Message);
    }

    [Fact]
    public async Task One_skipped_step_more_than_the_limit_stops_the_run_and_so_does_the_stop_policy()
    {
        var limited = Config("limited", new FaultOptions { MaxSkippedSteps = 1 });
        var e = await Assert.ThrowsAsync<TrainingDivergedException>(() => StageRunner.RunAsync(limited, RunDirectory.Create(limited), new Messages(), join: Replicas(limited, 2, 1, 2)));
        Assert.Contains("at step 2", e.Message);
        Assert.Contains("2 skipped steps, over faults.maxSkippedSteps (1)", e.Message);
        Assert.Contains("non-finite", e.Message);

        var strict = Config("strict", new FaultOptions { NonFinite = NonFinitePolicy.Stop });
        e = await Assert.ThrowsAsync<TrainingDivergedException>(() => StageRunner.RunAsync(strict, RunDirectory.Create(strict), new Messages(), join: Replicas(strict, 1, 3)));
        Assert.Contains("at step 3", e.Message);
        Assert.Contains("faults.nonFinite is stop", e.Message);
    }
}
