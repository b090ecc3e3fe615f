using Grpc.Core;
using SimClr.Coordinator;
using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Training;
using SimClr.Protocol;
using SimClr.Worker;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Distributed.Tests;

public sealed class DistributedStepTests : IAsyncLifetime
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
        var clients = new List<WorkerClient>();
        for (int w = 0; w < count; w++)
        {
            var host = await WorkerHost.StartAsync(new WorkerOptions { WorkerId = $"w{w}" });
            _hosts.Add(host);
            var client = new WorkerClient(host.Address, TimeSpan.FromSeconds(60));
            var train = _data.Train;
            var request = new JoinRequest
            {
                Version = ProtocolVersion._1,
                ConfigJson = RunConfigLoader.Serialize(Config),
                ModelHash = RunConfigLoader.ModelHash(Config),
                RunId = "test",
                Data = new DataShape { Channels = train.Channels, Height = train.Height, Width = train.Width },
            };
            request.Data.Mean.AddRange(train.Mean);
            request.Data.Std.AddRange(train.Std);
            await client.JoinAsync(request);
            clients.Add(client);
        }
        return clients;
    }

    private static readonly long[][] Batches = [[0, 3, 5, 7, 9, 11], [1, 2, 4, 6, 8, 10], [12, 13, 14, 15, 0, 1]];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public async Task Three_steps_over_grpc_workers_equal_three_steps_of_one_in_process_replica(int workerCount)
    {
        // the reference: one in-process replica taking the same three steps
        var train = _data.Train;
        using var replica = ContrastiveReplica.Build(Config, train.Channels, train.Mean, train.Std, CPU);
        var loss = new NtXentLoss(Config.Loss.Temperature);
        var expectedLosses = new List<double>();
        for (int s = 0; s < 3; s++)
        {
            using var scope = NewDisposeScope();
            var views = Batches[s].SelectMany(i => new[] { (i, 0), (i, 1) }).ToArray();
            var z = replica.Forward(train.Batch(Batches[s]).repeat_interleave(2, dim: 0), views, epoch: s);
            var (value, gradient) = loss.LossAndGradient(z);
            replica.ZeroGrad();
            replica.Backward(gradient);
            replica.Step(0.5);
            expectedLosses.Add(value);
        }

        var workers = await Workers(workerCount);
        var step = new DistributedStep(workers, loss);
        for (int s = 0; s < 3; s++)
        {
            var outcome = await step.RunAsync(train, Batches[s], epoch: s, step: s, learningRate: 0.5);
            Assert.Equal(expectedLosses[s], outcome.Loss, 5); // the global loss is Core's NT-Xent over the same views
        }

        var state = (await workers[^1].SaveStateAsync()).ToDictionary(t => t.Name);
        foreach (var (name, expected) in replica.Network.state_dict())
        {
            using var actual = empty(state[name].Shape, expected.is_floating_point() ? ScalarType.Float32 : ScalarType.Int64);
            state[name].Data.CopyTo(actual.bytes);
            double scale = Math.Max(1e-6, expected.abs().max().ToDouble());
            double diff = expected.to_type(actual.dtype).sub(actual).abs().max().ToDouble();
            Assert.True(diff <= 1e-5 * scale, $"{name} differs by {diff} (scale {scale})");
        }
        foreach (var client in workers) client.Dispose();
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
        Assert.Equal([2L, 8L], z.Shape);
        foreach (var c in workers) c.Dispose();
    }
}
