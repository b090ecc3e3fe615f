using Grpc.Core;
using SimClr.Coordinator;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Loss;
using SimClr.Core.Runtime;
using SimClr.Core.Step;
using SimClr.Worker;

namespace SimClr.Distributed.Tests;

/// <summary>
/// reduction.method nccl (issue 19) over gRPC workers whose NCCL is <see cref="StandInFabric"/>'s stand-in: the unique id
/// made by replica 0 and handed to every rank in the step's plan, one communicator kept for the run, the sum left on the
/// workers' devices, and a lost worker making the survivors abort theirs and join a new one made by the new replica 0.
/// </summary>
public sealed partial class DistributedStepTests
{
    private static ReductionOptions Nccl(double bucketMegabytes = 25) => new() { Method = ReductionMethod.Nccl, BucketMegabytes = bucketMegabytes };

    private Task<IReadOnlyList<IReplicaEndpoint>> NcclEndpoints(int count, StandInFabric fabric, RunConfig? config = null) =>
        Endpoints(count, config, w => new WorkerOptions { DeviceCollective = fabric.For($"w{w}") });

    private DataParallelStep NewStep(IReadOnlyList<IReplicaEndpoint> replicas, int groups, ReductionOptions reduction, List<string>? log = null) =>
        new(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions { Groups = groups }, log: log is null ? null : log.Add,
            reduction: reduction);

    [Theory]
    [InlineData(2, 2, 1e-6)] // a bucket per stage: an all-reduce per stage as backward finishes it
    [InlineData(2, 4, 0.02)] // 2 BN groups per worker: the float64 sums of the chunks are summed, in float64
    public async Task Nccl_sums_on_the_workers_with_the_stars_bits_one_communicator_for_the_run_and_no_gradient_leaving_a_device(int workers, int groups,
        double bucketMegabytes)
    {
        var star = await CountedSteps(workers, groups, new ReductionOptions { Method = ReductionMethod.Star });
        var fabric = new StandInFabric();
        var replicas = (await NcclEndpoints(workers, fabric, WithBatchNorm)).Select(r => new CountingEndpoint(r)).ToList();
        var step = NewStep(replicas, groups, Nccl(bucketMegabytes));
        Assert.IsType<NcclReducer>(step.Reducer);
        var outcomes = Enumerable.Range(0, 3).Select(s => step.Run(_data.Train, Batches[s], epoch: s, step: s, learningRate: 0.5)).ToList();
        var state = await replicas[0].SaveStateAsync(default);
        // two float32 addends are rounded once whoever adds them, and float64 chunk sums are exact: the star's bits
        Assert.Equal(0, LargestDifference(star.State, state));
        Assert.All(outcomes.Zip(star.Outcomes), o => Assert.Equal(o.Second.Loss, o.First.Loss));
        // replica 0 made the one id; every worker joined it once, as its rank; nothing was aborted
        Assert.Single(fabric.Entries("id"), e => e.StartsWith("id w0 ", StringComparison.Ordinal));
        string id = fabric.Entries("id")[0].Split(' ')[2];
        Assert.Equal(Enumerable.Range(0, workers).Select(w => $"join w{w} {id} {w}/{workers}").Order(), fabric.Entries("join").Order());
        Assert.Empty(fabric.Entries("abort"));
        // no gradient through the coordinator, and none off a worker's device: a worker copies its projections (1) and
        // reads the sum's non-finite count and its fingerprint (2)
        Assert.All(replicas, c => Assert.Equal((3, 0), (c.RingCalls, c.GradientsSent)));
        Assert.All(outcomes, o => Assert.All(o.Times!.Replicas, r => Assert.Equal(new SyncCounts(2, 1, 0), r.Syncs)));
        Assert.All(outcomes, o => Assert.Equal(new SyncCounts(1, workers, 0), o.Times!.CoordinatorSyncs));
        // the sums' time is the ring's in the step's breakdown, not backward's nor serialisation's
        Assert.All(outcomes, o => Assert.All(o.Times!.Replicas, r => Assert.True(r.RingMs > 0, $"ring {r.RingMs} ms")));
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task Auto_takes_nccl_when_every_worker_has_it_and_nccl_refuses_a_worker_without_it_naming_what_to_install_or_set()
    {
        var fabric = new StandInFabric();
        var both = await NcclEndpoints(2, fabric);
        Assert.IsType<NcclReducer>(NewStep(both, 2, new ReductionOptions()).Reducer);
        var mixed = await Endpoints(2, options: w => w == 0 ? new WorkerOptions { DeviceCollective = fabric.For("w0") } : new WorkerOptions { NcclLibrary = "/nowhere/libnccl.so.2" });
        Assert.IsType<RingReducer>(NewStep(mixed, 2, new ReductionOptions()).Reducer); // auto: the ring, as one worker has no NCCL
        var refused = Assert.Throws<ConfigException>(() => NewStep(mixed, 2, Nccl()));
        Assert.Contains("reduction.method is nccl, but worker 1", refused.Message);
        Assert.Contains("/nowhere/libnccl.so.2 does not exist", refused.Message);
        Assert.Contains("apt-get install libnccl2", refused.Message);
        Assert.Contains(Core.Runtime.Nccl.LibraryVariable, refused.Message);
        // the worker without NCCL refuses to make an id, saying why
        var client = ((GrpcReplicaEndpoint)mixed[1]).Client;
        var e = await Assert.ThrowsAsync<RpcException>(() => client.NewCommunicatorIdAsync());
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("/nowhere/libnccl.so.2 does not exist", e.Status.Detail);
        Assert.Empty(fabric.Entries("id")); // choosing made no communicator
        foreach (var replica in both.Concat(mixed)) replica.Dispose();
    }

    /// <summary>A worker that falls silent as its BackwardReduce of <paramref name="step"/> is due (a hung process, a
    /// dead link): it never reaches the communicator, where the others wait for its buckets, and the coordinator counts it
    /// lost after a while (as its heartbeat would). It does not come back.</summary>
    private sealed class SilentWhileReducing(IReplicaEndpoint inner, int step) : DelegatingEndpoint(inner)
    {
        private int _calls;

        public override async Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel)
        {
            if (_calls++ != step) return await base.BackwardReduceAsync(gradient, ring, rank, cancel);
            await Task.Delay(500, CancellationToken.None); // the other ranks are in the communicator by now
            throw new ReplicaLostException($"{Name}: no answer to 3 health checks in a row (stand-in)");
        }

        public override Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Task.FromResult<IReplicaEndpoint?>(null);
    }

    [Theory]
    [InlineData(1)] // in the middle of a sum: the others wait in the communicator, and abort it
    [InlineData(0)] // before the communicator formed: the others wait to join it, and stop waiting
    public async Task A_worker_lost_mid_sum_makes_the_survivors_abort_and_join_a_new_communicator_made_by_the_new_replica_0(int lostAtStep)
    {
        var fabric = new StandInFabric();
        var replicas = (await NcclEndpoints(3, fabric)).ToList(); // frozen BN statistics: every tensor of the state is shared
        replicas[0] = new SilentWhileReducing(replicas[0], lostAtStep);
        var log = new List<string>();
        var step = NewStep(replicas, 6, Nccl(1e-6), log);
        var started = DateTime.UtcNow;
        var outcomes = Enumerable.Range(0, 3).Select(s => step.Run(_data.Train, Batches[s], epoch: s, step: s, learningRate: 0.5)).ToList();
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(45), "the survivors stopped waiting when the coordinator cancelled, not at a timeout");
        Assert.All(outcomes, o => Assert.Equal(StepStatus.Applied, o.Status));
        Assert.Equal(2, step.Replicas.Count);
        Assert.Contains(log, m => m.Contains("worker 0", StringComparison.Ordinal));
        // two ids: w0's for the three, then the new replica 0's (w1) for the survivors, who joined it as ranks 0 and 1 of 2
        var ids = fabric.Entries("id");
        Assert.Equal(2, ids.Length);
        Assert.StartsWith("id w0 ", ids[0]);
        Assert.StartsWith("id w1 ", ids[1]);
        string old = ids[0].Split(' ')[2], fresh = ids[1].Split(' ')[2];
        Assert.Equal(new[] { $"join w1 {fresh} 0/2", $"join w2 {fresh} 1/2" }, fabric.Entries("join").Where(e => e.Contains(fresh, StringComparison.Ordinal)).Order());
        // joined once each, never again (lost at step 0, worker 0 never came)
        Assert.Equal(lostAtStep == 0 ? 2 : 3, fabric.Entries("join").Count(e => e.Contains(old, StringComparison.Ordinal)));
        // the survivors' wait ended when the coordinator cancelled their calls: in a sum, one of them aborted the communicator
        if (lostAtStep > 0) Assert.Contains(fabric.Entries("abort"), e => e.EndsWith(old, StringComparison.Ordinal) && !e.StartsWith("abort w0 ", StringComparison.Ordinal));
        Assert.DoesNotContain(fabric.Entries("abort"), e => e.EndsWith(fresh, StringComparison.Ordinal)); // the new one kept for step 2
        // the survivors agree (compared inside Run) and their state is one state
        var states = await Task.WhenAll(replicas.Skip(1).Select(r => r.SaveStateAsync(default)));
        Assert.Equal(0, LargestDifference(states[0], states[1]));
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task A_communicator_that_breaks_with_no_worker_lost_is_replaced_then_after_three_breaks_the_step_stops_saying_what_to_check()
    {
        var fabric = new StandInFabric { BrokenSums = 1 };
        var replicas = await NcclEndpoints(2, fabric);
        var log = new List<string>();
        var step = NewStep(replicas, 2, Nccl(), log);
        var redone = step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5);
        Assert.Equal(StepStatus.Applied, redone.Status);
        Assert.Contains(log, m => m.StartsWith("the NCCL all-reduce broke at step 0", StringComparison.Ordinal) && m.EndsWith("redoing the step on a new communicator", StringComparison.Ordinal));
        Assert.Equal(2, fabric.Entries("id").Length); // the redo ran on a new communicator
        Assert.Equal(2, step.Replicas.Count); // nobody was lost for it

        fabric.BrokenSums = 100;
        var stopped = step.Run(_data.Train, Batches[1], epoch: 0, step: 1, learningRate: 0.5);
        Assert.Equal(StepStatus.Stopped, stopped.Status);
        Assert.False(stopped.WorkersLost);
        Assert.StartsWith($"the workers' NCCL all-reduce broke {DataParallelStep.RingAttempts} times in a row at step 1 with no worker lost", stopped.Reason);
        Assert.Contains("NCCL_SOCKET_IFNAME", stopped.Reason);
        // the first attempt on the communicator kept from step 0's redo, a new one for each of the others
        Assert.Equal(1 + DataParallelStep.RingAttempts, fabric.Entries("id").Length);
        Assert.Equal(2, step.Replicas.Count);
        foreach (var replica in replicas) replica.Dispose();
    }
}
