using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using SimClr.Core.Step;
using SimClr.Core.Tests.Replica;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Step;

/// <summary>
/// What a step reads from its devices, pinned (issue 16): every read goes through <see cref="HostSyncs"/>, so these
/// counts are what a GPU would stall for. One process: the loss (with the step's counts) and the fused non-finite flag.
/// Replicas in one process: tensors never leave the device except a star's gradient, which is bytes by design.
/// </summary>
public sealed class HostSyncTests : IAsyncLifetime
{
    private static readonly long[][] Batches = [[0, 3, 5, 7, 9, 11], [1, 2, 4, 6, 8, 10]];
    private TrainTestSplit _data = null!;

    public async Task InitializeAsync() => _data = await new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 4).LoadAsync();

    public Task DisposeAsync()
    {
        _data.Dispose();
        return Task.CompletedTask;
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void A_single_process_pretraining_step_reads_twice_and_copies_nothing(string device)
    {
        using var replica = TinyReplica.Build(3, ownsModel: true, device: device);
        var step = new DataParallelStep([new LocalReplicaEndpoint(replica)], new ContrastiveLoss(new NtXentLoss(0.5)), new BatchingOptions(),
            lossDevice: TestDevices.Get(device));
        for (int s = 0; s < Batches.Length; s++)
        {
            var result = step.Run(_data.Train, Batches[s], epoch: 0, step: s, learningRate: 0.1);
            Assert.Equal(StepStatus.Applied, result.Status);
            Assert.Equal((2, 0), (result.Times!.Syncs.Reads, result.Times.Syncs.Transport)); // the loss; the non-finite flag
            var metrics = result.Times.ToMetrics();
            Assert.Equal(2, metrics["host_syncs"]);
            Assert.Equal(0, metrics["host_syncs_transport"]);
            AssertTimerSyncs(device, metrics["host_syncs_timer"]);
        }
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void A_single_process_classifier_step_reads_its_counts_with_the_loss(string device)
    {
        using var replica = TinyReplica.Build(3, classes: _data.Train.ClassNames.Count, ownsModel: true, device: device);
        var step = new DataParallelStep([new LocalReplicaEndpoint(replica)], new ClassificationLoss(_data.Train.Labels), new BatchingOptions(),
            lossDevice: TestDevices.Get(device));
        var result = step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.1);
        Assert.Equal(StepStatus.Applied, result.Status);
        Assert.Equal((2, 0), (result.Times!.Syncs.Reads, result.Times.Syncs.Transport));
        Assert.Equal(Batches[0].Length, result.Metrics["seen"]);
        Assert.InRange(result.Metrics["correct"], 0, Batches[0].Length);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Two_replicas_in_one_process_read_a_fingerprint_and_copy_only_the_stars_gradient(string device)
    {
        using var first = TinyReplica.Build(3, ownsModel: true, device: device);
        using var second = TinyReplica.Build(3, ownsModel: true, device: device);
        var step = new DataParallelStep([new LocalReplicaEndpoint(first, "a"), new LocalReplicaEndpoint(second, "b")], new ContrastiveLoss(new NtXentLoss(0.5)),
            new BatchingOptions(), lossDevice: TestDevices.Get(device));
        var result = step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.1);
        Assert.Equal(StepStatus.Applied, result.Status);
        Assert.StartsWith("fp:", result.Checksum);
        Assert.Equal(new SyncCounts(1, 0, 0), result.Times!.CoordinatorSyncs); // the loss; dL/dz stays on the device
        Assert.All(result.Times.Replicas, r => Assert.Equal((1, 1), (r.Syncs.Reads, r.Syncs.Transport))); // the fingerprint; the flat gradient for the star

        var full = step.Run(_data.Train, Batches[1], epoch: 0, step: 1, learningRate: 0.1, full: true);
        Assert.DoesNotContain("fp:", full.Checksum);
        Assert.Equal(first.Checksum(), full.Checksum);
        Assert.All(full.Times!.Replicas, r => Assert.Equal((1, 1), (r.Syncs.Reads, r.Syncs.Transport))); // the checksum is one copy of all parameters
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void The_fingerprint_tells_a_one_ulp_change_of_one_parameter(string device)
    {
        using var a = TinyReplica.Build(3, ownsModel: true, device: device);
        using var b = TinyReplica.Build(3, ownsModel: true, device: device);
        Assert.Equal(a.Fingerprint(), b.Fingerprint());
        Assert.Equal(a.Checksum(), b.Checksum());
        foreach (int parameter in new[] { 0, b.Parameters.Count / 2, b.Parameters.Count - 1 })
        {
            string before = b.Fingerprint();
            NudgeOneUlp(b, parameter, index: 1);
            Assert.NotEqual(before, b.Fingerprint());
        }
        Assert.NotEqual(a.Checksum(), b.Checksum());
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void A_replica_one_ulp_apart_is_caught_at_the_next_step(string device)
    {
        using var first = TinyReplica.Build(3, ownsModel: true, device: device);
        using var second = TinyReplica.Build(3, ownsModel: true, device: device);
        var step = new DataParallelStep([new LocalReplicaEndpoint(first, "a"), new LocalReplicaEndpoint(second, "b")], new ContrastiveLoss(new NtXentLoss(0.5)),
            new BatchingOptions(), lossDevice: TestDevices.Get(device));
        // learning rate 0: the steps leave every parameter as it is, so the nudge is not rounded away by an update
        Assert.Equal(StepStatus.Applied, step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0).Status);
        NudgeOneUlp(second, second.Parameters.Count / 2, index: 0);
        var e = Assert.Throws<ReplicaDivergenceException>(() => step.Run(_data.Train, Batches[1], epoch: 0, step: 1, learningRate: 0));
        Assert.Contains("diverged at step 1: parameter fingerprints", e.Message);
    }

    /// <summary>Phase timers synchronise only on CUDA (each phase boundary, so their times are the kernels').</summary>
    private static void AssertTimerSyncs(string device, double timer)
    {
        if (TestDevices.Exact(device)) Assert.Equal(0, timer);
        else Assert.True(timer > 0, "a CUDA replica's phase timers synchronise");
    }

    /// <summary>Moves value <paramref name="index"/> of parameter <paramref name="parameter"/> to the next float32 up.</summary>
    private static void NudgeOneUlp(ModelReplica replica, int parameter, long index)
    {
        var p = replica.Parameters[parameter].Parameter;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = p.view(-1);
        float value = flat[index].ToSingle();
        flat[index] = tensor(MathF.BitIncrement(value));
        Assert.NotEqual(value, flat[index].ToSingle());
    }
}
