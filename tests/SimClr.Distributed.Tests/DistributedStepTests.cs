using System.Runtime.InteropServices;
using Grpc.Core;
using SimClr.Coordinator;
using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Worker;
using TorchSharp;
using ReducePrecision = SimClr.Core.Collectives.ReducePrecision;
using static TorchSharp.torch;

namespace SimClr.Distributed.Tests;

public sealed partial class DistributedStepTests : IAsyncLifetime
{
    private static readonly RunConfig Config = new()
    {
        Seed = 5,
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8, BatchNorm = BatchNormStatistics.Frozen },
        Optimizer = new OptimizerOptions { Kind = OptimizerKind.Lars, BaseLearningRate = 1.0, Scaling = LearningRateScaling.None, TrustCoefficient = 0.02 },
        Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 4),
    };

    private readonly List<WorkerHost> _hosts = [];
    private TrainTestSplit _data = null!;

    public async Task InitializeAsync() => _data = await Config.Data.LoadAsync();

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts) await host.DisposeAsync();
        _data.Dispose();
    }

    private async Task<List<WorkerClient>> Workers(int count)
    {
        var endpoints = await Endpoints(count);
        return endpoints.Cast<GrpcReplicaEndpoint>().Select(e => e.Client).ToList();
    }

    /// <param name="options">Worker w's options beyond its id (default: none).</param>
    private async Task<IReadOnlyList<IReplicaEndpoint>> Endpoints(int count, RunConfig? config = null, Func<int, WorkerOptions>? options = null)
    {
        var addresses = new List<Uri>();
        for (int w = 0; w < count; w++)
        {
            var host = await WorkerHost.StartAsync((options?.Invoke(w) ?? new WorkerOptions()) with { WorkerId = $"w{w}" });
            _hosts.Add(host);
            addresses.Add(host.Address);
        }
        return await WorkerPool.JoinAsync(addresses, config ?? Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
    }

    private static readonly long[][] Batches = [[0, 3, 5, 7, 9, 11], [1, 2, 4, 6, 8, 10], [12, 13, 14, 15, 0, 1]];

    /// <summary>The reference: one in-process replica taking three steps by hand (forward, Core's NT-Xent, backward, step).</summary>
    private (ModelReplica Replica, List<double> Losses) Reference()
    {
        var train = _data.Train;
        var replica = ReplicaFactory.Build(Config, train.Channels, train.Mean, train.Std, CPU);
        var loss = new NtXentLoss(Config.Loss.Temperature);
        var losses = new List<double>();
        for (int s = 0; s < 3; s++)
        {
            using var scope = NewDisposeScope();
            var views = Batches[s].SelectMany(i => new[] { (i, 0), (i, 1) }).ToArray();
            var z = replica.Forward(train.Batch(Batches[s]).repeat_interleave(2, dim: 0), views, epoch: s);
            var (value, gradient) = loss.LossAndGradient(z);
            replica.ZeroGrad();
            replica.Backward(gradient);
            replica.Step(0.5);
            losses.Add(value);
        }
        return (replica, losses);
    }

    private static void AssertSameState(ModelReplica expected, IReadOnlyList<NamedBytes> actualState)
    {
        var state = actualState.ToDictionary(t => t.Name);
        foreach (var (name, tensor) in expected.Network.state_dict())
        {
            using var actual = state[Core.Checkpoints.Checkpoint.ModelPrefix + name].ToTensor();
            double scale = Math.Max(1e-6, tensor.abs().max().ToDouble());
            double diff = tensor.to_type(actual.dtype).sub(actual).abs().max().ToDouble();
            Assert.True(diff <= 1e-5 * scale, $"{name} differs by {diff} (scale {scale})");
        }
        Assert.Contains(state.Keys, k => k.StartsWith(Core.Checkpoints.Checkpoint.OptimizerPrefix, StringComparison.Ordinal)); // momentum travels too
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(4, 1)]
    [InlineData(1, 4)]
    [InlineData(2, 2)]
    public async Task Three_steps_over_grpc_workers_and_chunks_equal_three_steps_of_one_in_process_replica(int workerCount, int chunks)
    {
        var (reference, expectedLosses) = Reference();
        using var _ = reference;
        var replicas = await Endpoints(workerCount);
        var step = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions { Chunks = chunks });
        for (int s = 0; s < 3; s++)
        {
            var outcome = step.Run(_data.Train, Batches[s], epoch: s, step: s, learningRate: 0.5);
            Assert.Equal(expectedLosses[s], outcome.Loss, 5); // the global loss is Core's NT-Xent over the same views
            Assert.NotNull(outcome.Checksum); // compared across replicas inside Run: equal on all, or it throws
        }
        foreach (var replica in replicas) AssertSameState(reference, await replica.SaveStateAsync(default));
        foreach (var replica in replicas) replica.Dispose();
    }

    private static RunConfig WithBatchNorm => Config with { Model = Config.Model with { BatchNorm = BatchNormStatistics.Batch } };

    /// <summary>Three steps over <paramref name="workers"/> gRPC workers summing by <paramref name="reduction"/>; the final state of worker 0.</summary>
    private async Task<(IReadOnlyList<NamedBytes> State, List<StepResult> Outcomes, bool Ring)> Steps(int workers, int groups, ReductionOptions reduction)
    {
        var (state, outcomes, ring, _) = await CountedSteps(workers, groups, reduction);
        return (state, outcomes, ring);
    }

    /// <summary>An endpoint that counts the ring calls it takes part in and the gradients the coordinator sends it.</summary>
    private sealed class CountingEndpoint(IReplicaEndpoint inner) : DelegatingEndpoint(inner)
    {
        public int RingCalls;
        public int GradientsSent;

        public override Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel)
        {
            Interlocked.Increment(ref RingCalls);
            return base.BackwardReduceAsync(gradient, ring, rank, cancel);
        }

        public override Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Core.Step.Agreement agreement, CancellationToken cancel)
        {
            if (gradient.Source == GradientSource.Sent) Interlocked.Increment(ref GradientsSent);
            return base.ApplyStepAsync(step, learningRate, gradient, agreement, cancel);
        }
    }

    private async Task<(IReadOnlyList<NamedBytes> State, List<StepResult> Outcomes, bool Ring, List<CountingEndpoint> Counts)> CountedSteps(
        int workers, int groups, ReductionOptions reduction)
    {
        var replicas = (await Endpoints(workers, WithBatchNorm)).Select(r => new CountingEndpoint(r)).ToList();
        var step = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions { Groups = groups },
            reduction: reduction);
        var outcomes = Enumerable.Range(0, 3).Select(s => step.Run(_data.Train, Batches[s], epoch: s, step: s, learningRate: 0.5)).ToList();
        var state = await replicas[0].SaveStateAsync(default);
        bool ring = step.UsesRing;
        foreach (var replica in replicas) replica.Dispose();
        return (state, outcomes, ring, replicas);
    }

    /// <summary>The largest element difference over the state's tensors (with <paramref name="relative"/>: over the tensor's largest value).</summary>
    private static double LargestDifference(IReadOnlyList<NamedBytes> a, IReadOnlyList<NamedBytes> b, bool relative = false) =>
        a.Zip(b, (x, y) =>
        {
            if (!x.IsFloat) return x.Data.SequenceEqual(y.Data) ? 0 : double.PositiveInfinity;
            var p = MemoryMarshal.Cast<byte, float>(x.Data).ToArray();
            var q = MemoryMarshal.Cast<byte, float>(y.Data).ToArray();
            double largest = p.Zip(q, (u, v) => (double)Math.Abs(u - v)).DefaultIfEmpty().Max();
            return relative ? largest / Math.Max(1e-12, p.Select(u => (double)Math.Abs(u)).DefaultIfEmpty().Max()) : largest;
        }).Max();

    [Theory]
    [InlineData(2, 2, 25.0)] // the default cap: this small model is one bucket
    [InlineData(2, 2, 0.0)] // one bucket, after the whole backward
    [InlineData(3, 6, 0.02)] // 2 BN groups per worker: float64 partials; buckets of ~20 KB over the last chunk's backward
    [InlineData(4, 4, 1e-6)] // a bucket per stage
    public async Task The_workers_ring_gives_the_bits_of_the_coordinators_star_and_moves_no_gradient_through_it(int workers, int groups, double bucketMegabytes)
    {
        var star = await CountedSteps(workers, groups, new ReductionOptions { Method = ReductionMethod.Star });
        var ring = await CountedSteps(workers, groups, new ReductionOptions { BucketMegabytes = bucketMegabytes }); // auto: the ring, as every replica is a worker
        Assert.False(star.Ring);
        Assert.True(ring.Ring);
        Assert.Equal(0, LargestDifference(star.State, ring.State)); // exact sums: bit-identical, BatchNorm on batch statistics
        // every worker summed by the ring in each of the 3 steps and got no gradient from the coordinator, which reduced
        // nothing; the star the other way round. (The ring's exposed time can be 0: backward may hide all of it.)
        Assert.All(ring.Counts, c => Assert.Equal((3, 0), (c.RingCalls, c.GradientsSent)));
        Assert.All(ring.Outcomes, o => Assert.True(o.Times!.ReduceMs == 0 && o.Times.Replicas.All(r => r.RingMs >= 0), "no reduction on the coordinator"));
        Assert.All(star.Counts, c => Assert.Equal((0, 3), (c.RingCalls, c.GradientsSent)));
        Assert.All(star.Outcomes, o => Assert.True(o.Times!.Replicas.All(r => r.RingMs == 0)));
        // host synchronisations (issue 16): the coordinator reads the loss once and copies each worker's dL/dz for the
        // wire; a worker reads its fingerprint once and copies its projections and its gradient (the star: one flat copy;
        // the ring: one per bucket)
        Assert.All(star.Outcomes.Concat(ring.Outcomes), o => Assert.Equal(new SyncCounts(1, workers, 0), o.Times!.CoordinatorSyncs));
        Assert.All(star.Outcomes, o => Assert.All(o.Times!.Replicas, r => Assert.Equal(new SyncCounts(1, 2, 0), r.Syncs)));
        Assert.All(ring.Outcomes, o => Assert.All(o.Times!.Replicas, r => Assert.True(r.Syncs.Reads == 1 && r.Syncs.Timer == 0
            && (bucketMegabytes == 0 ? r.Syncs.Transport == 2 : r.Syncs.Transport >= 2), $"ring worker syncs {r.Syncs}")));
    }

    [Theory]
    [InlineData(ReducePrecision.Float32, 1e-5)]
    [InlineData(ReducePrecision.Bfloat16, 2e-2)] // 3 LARS steps at lr 0.5: seen 6e-3 on weights, 1e-3 on the loss
    public async Task A_lossy_ring_keeps_the_workers_identical_and_close_to_the_exact_run(ReducePrecision precision, double tolerance)
    {
        var exact = await Steps(3, 3, new ReductionOptions { Method = ReductionMethod.Ring });
        var lossy = await Steps(3, 3, new ReductionOptions { Method = ReductionMethod.Ring, Precision = precision, PieceElements = 1000 });
        Assert.All(lossy.Outcomes, o => Assert.NotNull(o.Checksum)); // compared over the workers inside Run: one result for the ring
        // conv and linear weights, relative to each tensor's largest value. Left out: momentum and BatchNorm's scales and
        // shifts, small per-channel vectors whose gradient sums over workers nearly cancel in so small a model and batch,
        // so that bfloat16's rounding of the addends dominates them (seen: 5e-2 on a BN scale, 2e-1 on BN shifts near 0).
        static List<NamedBytes> Weights(IReadOnlyList<NamedBytes> state) =>
            state.Where(t => t.Name.StartsWith(Core.Checkpoints.Checkpoint.ModelPrefix, StringComparison.Ordinal) && t.IsFloat && t.Shape.Length > 1).ToList();
        double difference = LargestDifference(Weights(exact.State), Weights(lossy.State), relative: true);
        Assert.True(difference <= tolerance, $"{precision}: weights {difference:E2} (relative to each tensor's largest value) from the exact run's");
        Assert.All(exact.Outcomes.Zip(lossy.Outcomes), o => Assert.Equal(o.First.Loss, o.Second.Loss, tolerance * o.First.Loss));
        if (precision == ReducePrecision.Bfloat16) Assert.True(difference > 0, "bfloat16 on the wire changes the result");
    }

    /// <summary>A worker that tells the others a wrong address for itself: its ring cannot form.</summary>
    private sealed class UnreachablePeer(IReplicaEndpoint inner) : DelegatingEndpoint(inner)
    {
        public override string? PeerAddress => "http://127.0.0.1:9"; // discard port: nothing listens
    }

    /// <summary>A worker handed a NaN in dL/dz at step 0: its gradient, and so the ring's sum, is not finite.</summary>
    private sealed class PoisonedDz(IReplicaEndpoint inner) : DelegatingEndpoint(inner)
    {
        public bool Armed { get; set; } = true;

        public override Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel)
        {
            if (!Armed) return base.BackwardReduceAsync(gradient, ring, rank, cancel);
            var data = gradient.Data.ToArray();
            BitConverter.GetBytes(float.NaN).CopyTo(data, 0);
            return base.BackwardReduceAsync(new FloatBlock(gradient.Shape, data), ring, rank, cancel);
        }
    }

    [Fact]
    public async Task A_non_finite_sum_found_by_the_ring_is_not_applied_and_the_next_step_is()
    {
        var replicas = (await Endpoints(2)).ToList();
        var poisoned = new PoisonedDz(replicas[1]);
        replicas[1] = poisoned;
        var before = await replicas[0].SaveStateAsync(default);
        var step = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions(),
            reduction: new ReductionOptions { Method = ReductionMethod.Ring });
        var refused = step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5);
        Assert.Contains("non-finite", refused.NotApplied);
        foreach (var replica in replicas) Assert.Equal(0, LargestDifference(before, await replica.SaveStateAsync(default))); // no weight moved
        poisoned.Armed = false;
        var applied = step.Run(_data.Train, Batches[1], epoch: 0, step: 1, learningRate: 0.5);
        Assert.Null(applied.NotApplied);
        Assert.NotNull(applied.Checksum);
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task A_ring_that_cannot_form_is_retried_then_named_with_what_to_do_and_no_worker_is_dropped()
    {
        var replicas = (await Endpoints(3)).ToList();
        replicas[1] = new UnreachablePeer(replicas[1]);
        var messages = new List<string>();
        var step = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions(), log: messages.Add);
        var stopped = step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5);
        Assert.Equal(StepStatus.Stopped, stopped.Status);
        Assert.False(stopped.WorkersLost);
        Assert.Contains("reduction.method", stopped.Reason);
        Assert.Contains("127.0.0.1:9", stopped.Reason); // the address worker 0 could not reach
        Assert.Equal(DataParallelStep.RingAttempts - 1, messages.Count(m => m.Contains("ring all-reduce broke", StringComparison.Ordinal)));
        Assert.Equal(3, step.Replicas.Count); // nobody was lost for it
        // the same workers still step through the coordinator
        var star = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions(),
            reduction: new ReductionOptions { Method = ReductionMethod.Star });
        Assert.NotNull(star.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5).Checksum);
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task One_in_process_replica_with_four_chunks_equals_the_reference()
    {
        var (reference, expectedLosses) = Reference();
        using var _ = reference;
        var train = _data.Train;
        using var replica = ReplicaFactory.Build(Config, train.Channels, train.Mean, train.Std, CPU);
        var local = new LocalReplicaEndpoint(replica);
        var step = new DataParallelStep([local], new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions { Chunks = 4 });
        for (int s = 0; s < 3; s++) Assert.Equal(expectedLosses[s], step.Run(train, Batches[s], epoch: s, step: s, learningRate: 0.5).Loss, 5);
        AssertSameState(reference, await local.SaveStateAsync(default));
    }

    [Fact]
    public async Task A_replica_that_differs_is_detected_by_the_checksum_after_the_step()
    {
        var replicas = await Endpoints(2);
        // perturb worker 1 alone: load a state whose first parameter is off by a little
        var state = (await replicas[1].SaveStateAsync(default)).ToList();
        int first = state.FindIndex(s => s.IsFloat && s.Name.StartsWith(Core.Checkpoints.Checkpoint.ModelPrefix, StringComparison.Ordinal));
        var data = state[first].Data.ToArray();
        data[0] ^= 1;
        state[first] = state[first] with { Data = data };
        await replicas[1].LoadStateAsync(state, default);
        var step = new DataParallelStep(replicas, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions());
        var e = Assert.Throws<ReplicaDivergenceException>(() => step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5));
        Assert.Contains("worker 1", e.Message);
        foreach (var replica in replicas) replica.Dispose();
    }

    [Fact]
    public async Task Calls_before_join_and_malformed_shards_are_answered_with_errors_not_crashes()
    {
        var host = await WorkerHost.StartAsync(new WorkerOptions());
        _hosts.Add(host);
        using var client = new WorkerClient(host.Address, TimeSpan.FromSeconds(30));
        var e = await Assert.ThrowsAsync<RpcException>(() => client.ApplyStepAsync(0, 0.1, new byte[8]));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);

        var wrong = new JoinRequest { Version = ProtocolVersion._1, ConfigJson = RunConfigLoader.Serialize(Config), ModelHash = "not-the-hash" };
        e = await Assert.ThrowsAsync<RpcException>(() => client.JoinAsync(wrong));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);

        var workers = await Workers(1);
        var header = new ShardHeader { Epoch = 0 };
        header.Indices.Add(0);
        header.Views.Add(0);
        // one row declared, two images sent
        e = await Assert.ThrowsAsync<RpcException>(() => workers[0].ForwardAsync(header, [2, 3, 32, 32], new byte[2 * 3 * 32 * 32]));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("for 1 rows", e.Status.Detail);
        // backward without forward
        e = await Assert.ThrowsAsync<RpcException>(() => workers[0].BackwardAsync([2, 8], new byte[64]));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        // the worker still serves a good shard afterwards
        header.Indices.Add(0);
        header.Views.Add(1);
        var z = await workers[0].ForwardAsync(header, [2, 3, 32, 32], new byte[2 * 3 * 32 * 32]);
        Assert.Equal([2L, 8L], z.Value.Shape);
        Assert.True(z.Times.ForwardMs > 0, "the replica's own times come back in the call's trailer");
        foreach (var c in workers) c.Dispose();
    }

    [Fact]
    public async Task LoadState_refuses_a_state_of_another_shape_and_leaves_the_replica_as_it_was()
    {
        var replicas = await Endpoints(1);
        var state = (await replicas[0].SaveStateAsync(default)).ToList();
        var before = await replicas[0].LoadStateAsync(state, default);
        var bad = state.ToList();
        int last = bad.FindLastIndex(s => s.IsFloat && s.Name.StartsWith("model.", StringComparison.Ordinal));
        bad[last] = bad[last] with { Shape = [1, bad[last].Data.Length / 4] }; // right size, wrong shape, after many good tensors
        var e = await Assert.ThrowsAsync<RpcException>(() => replicas[0].LoadStateAsync(bad, default));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("shape", e.Status.Detail);
        Assert.Equal(before, await replicas[0].LoadStateAsync(state, default)); // unchanged, and a good state still loads
        replicas[0].Dispose();
    }

    [Fact]
    public async Task A_worker_with_a_run_token_refuses_calls_without_it_and_serves_the_coordinator_that_has_it()
    {
        const string token = "0123456789abcdef0123456789abcdef";
        var host = await WorkerHost.StartAsync(new WorkerOptions { Token = token });
        _hosts.Add(host);
        using (var stranger = new WorkerClient(host.Address, TimeSpan.FromSeconds(30)))
        {
            await WorkerPool.WaitHealthyAsync(stranger, TimeSpan.FromSeconds(30)); // health stays open
            var e = await Assert.ThrowsAsync<RpcException>(() => stranger.ApplyStepAsync(0, 0.1, new byte[8]));
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
        }
        using (var wrong = new WorkerClient(host.Address, TimeSpan.FromSeconds(30), token.Replace('0', 'x')))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => wrong.SaveStateAsync());
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
        }
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30), token: token);
        Assert.NotEmpty(await joined[0].SaveStateAsync(default));
        joined[0].Dispose();
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, written as PEM files; returns (certificate, key) paths.</summary>
    private static (string Certificate, string Key) SelfSigned(string folder)
    {
        using var key = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=simclr-test-worker", key,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        var names = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string cert = Path.Combine(folder, "worker.pem"), keyPath = Path.Combine(folder, "worker.key");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (cert, keyPath);
    }

    [Fact]
    public async Task Beyond_loopback_with_TLS_and_a_token_only_a_coordinator_that_trusts_the_certificate_and_has_the_token_gets_in()
    {
        const string token = "fedcba9876543210fedcba9876543210";
        var folder = Directory.CreateTempSubdirectory("simclr-tls-").FullName;
        try
        {
            var (cert, key) = SelfSigned(folder);
            var host = await WorkerHost.StartAsync(new WorkerOptions { Host = "0.0.0.0", Token = token, TlsCertificatePath = cert, TlsKeyPath = key });
            _hosts.Add(host);
            Assert.Equal("https", host.Address.Scheme);
            var address = new Uri($"https://127.0.0.1:{host.Address.Port}");
            using var trusted = Tls.LoadTrusted(cert);

            // the right certificate trust and the right token: joined, and a state comes back over TLS
            var joined = await WorkerPool.JoinAsync([address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30), token: token, trusted: trusted);
            Assert.NotEmpty(await joined[0].SaveStateAsync(default));
            joined[0].Dispose();
            // two such workers sum their gradients in a ring between them: TLS and the token worker to worker too
            var second = await WorkerHost.StartAsync(new WorkerOptions { Host = "0.0.0.0", Token = token, TlsCertificatePath = cert, TlsKeyPath = key });
            _hosts.Add(second);
            var pair = await WorkerPool.JoinAsync([address, new Uri($"https://127.0.0.1:{second.Address.Port}")], Config, _data.Train, TimeSpan.FromSeconds(60),
                TimeSpan.FromSeconds(30), token: token, trusted: trusted);
            var step = new DataParallelStep(pair, new ContrastiveLoss(new NtXentLoss(Config.Loss.Temperature)), new BatchingOptions(),
                reduction: new ReductionOptions { Method = ReductionMethod.Ring });
            Assert.NotNull(step.Run(_data.Train, Batches[0], epoch: 0, step: 0, learningRate: 0.5).Checksum);
            foreach (var replica in pair) replica.Dispose();
            // trusted but no token, or a wrong one: Unauthenticated
            using (var stranger = new WorkerClient(address, TimeSpan.FromSeconds(30), trusted: trusted))
                Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => stranger.SaveStateAsync())).StatusCode);
            using (var wrong = new WorkerClient(address, TimeSpan.FromSeconds(30), token.Replace('f', '0'), trusted))
                Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => wrong.SaveStateAsync())).StatusCode);
            // the right token but the certificate not trusted: the TLS handshake fails, nothing is sent
            using (var untrusting = new WorkerClient(address, TimeSpan.FromSeconds(30), token))
            {
                var e = await Assert.ThrowsAsync<RpcException>(() => untrusting.SaveStateAsync());
                Assert.Contains("SSL", e.Status.DebugException?.ToString() ?? e.Status.Detail, StringComparison.Ordinal);
                Assert.True(GrpcReplicaEndpoint.MeansLost(e.StatusCode)); // a coordinator would report the worker unreachable
            }
            // plain HTTP/2 to the TLS port: refused
            using (var plain = new WorkerClient(new Uri($"http://127.0.0.1:{host.Address.Port}"), TimeSpan.FromSeconds(30), token))
                Assert.NotEqual(StatusCode.OK, (await Assert.ThrowsAsync<RpcException>(() => plain.SaveStateAsync())).StatusCode);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Worker_calls_run_one_at_a_time_and_a_call_that_waits_too_long_is_refused()
    {
        var host = await WorkerHost.StartAsync(new WorkerOptions { BusySeconds = 1 });
        _hosts.Add(host);
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var client = new WorkerClient(host.Address, TimeSpan.FromSeconds(30));
        var raw = new SimClr.Protocol.Worker.WorkerClient(client.Channel);
        // a stray caller opens a stream and never finishes it: it holds the worker's one call slot ...
        var held = (await joined[0].SaveStateAsync(default)).First(t => t.IsFloat); // a tensor the worker's model has: its header is accepted
        using var hold = raw.LoadState();
        var header = new TensorHeader { Name = held.Name, Dtype = DType.Float32, Chunks = 2 };
        header.Shape.Add(held.Shape);
        await hold.RequestStream.WriteAsync(new TensorChunk { Header = header, Index = 0, Data = Google.Protobuf.ByteString.CopyFrom(new byte[4]) }); // 1 of 2 chunks
        await Task.Delay(300);
        // ... so the next call waits, and after BusySeconds is refused with a clear status; health still answers
        var e = await Assert.ThrowsAsync<RpcException>(() => client.SaveStateAsync());
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("one Worker call runs at a time", e.Status.Detail);
        await WorkerPool.WaitHealthyAsync(client, TimeSpan.FromSeconds(5));
        // once the stray call ends (its stream was malformed: refused), the slot is free again
        await hold.RequestStream.CompleteAsync();
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => hold.ResponseAsync)).StatusCode);
        Assert.NotEmpty(await joined[0].SaveStateAsync(default));
        joined[0].Dispose();
    }

    [Fact]
    public async Task Listening_beyond_loopback_without_a_token_is_refused()
    {
        var e = await Assert.ThrowsAsync<ProtocolViolation>(() => WorkerHost.StartAsync(new WorkerOptions { Host = "0.0.0.0" }));
        Assert.Contains("run token", e.Message);
    }
}
