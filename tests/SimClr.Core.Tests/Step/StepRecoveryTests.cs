using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Step;

namespace SimClr.Core.Tests.Step;

/// <summary>The one policy that says what a failed attempt at a step leads to (redo, go on, wait, stop).</summary>
public sealed class StepRecoveryTests
{
    /// <summary>An endpoint that is only a name (the policy reads nothing else).</summary>
    private sealed class Named(string name) : IReplicaEndpoint
    {
        public string Name => name;

        public Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel) => throw new NotSupportedException();

        public Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel) => throw new NotSupportedException();

        public Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel) =>
            throw new NotSupportedException();

        public Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel) => throw new NotSupportedException();

        public Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel) => throw new NotSupportedException();

        public Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Task.FromResult<IReplicaEndpoint?>(null);

        public void Dispose()
        {
        }
    }

    private static StepFailure Lost(bool applied = false) =>
        new([new Named("worker 1")], "gone", applied ? new StepResult(StepStatus.Applied, 1.0, "abc", new Dictionary<string, double>()) : null);

    [Fact]
    public void Elastic_redoes_a_step_lost_before_it_was_applied_and_goes_on_after()
    {
        var recovery = new StepRecovery(new FaultOptions { Policy = FaultPolicy.Elastic, MinWorkers = 1 });
        var (next, message) = recovery.Decide(Lost(), step: 7, active: 2);
        Assert.Equal(Recovery.Redo, next);
        Assert.Contains("lost worker 1 at step 7 (gone); redoing the step over 2 worker(s)", message);
        (next, message) = recovery.Decide(Lost(applied: true), step: 8, active: 2);
        Assert.Equal(Recovery.GoOn, next);
        Assert.Contains("while applying step 8", message);
    }

    [Fact]
    public void Fail_fast_stops_and_below_the_minimum_waits()
    {
        var (next, message) = new StepRecovery(new FaultOptions { Policy = FaultPolicy.FailFast }).Decide(Lost(), step: 3, active: 2);
        Assert.Equal(Recovery.Stop, next);
        Assert.Contains("faults.policy is fail-fast", message);
        (next, message) = new StepRecovery(new FaultOptions { Policy = FaultPolicy.Elastic, MinWorkers = 2 }).Decide(Lost(applied: true), step: 3, active: 1);
        Assert.Equal(Recovery.Wait, next);
        Assert.Contains("1 worker(s) left, faults.minWorkers is 2", message);
    }

    [Fact]
    public void A_broken_ring_is_retried_a_few_times_in_a_row_then_stops_and_a_good_step_resets_the_count()
    {
        var recovery = new StepRecovery();
        var broken = new StepFailure([], "worker 0: no route");
        for (int attempt = 1; attempt < StepRecovery.RingAttempts; attempt++) Assert.Equal(Recovery.Redo, recovery.Decide(broken, 0, 3).Next);
        recovery.Succeeded();
        for (int attempt = 1; attempt < StepRecovery.RingAttempts; attempt++) Assert.Equal(Recovery.Redo, recovery.Decide(broken, 1, 3).Next);
        var (next, message) = recovery.Decide(broken, 1, 3);
        Assert.Equal(Recovery.Stop, next);
        Assert.Contains("reduction.method to star", message);
    }
}
