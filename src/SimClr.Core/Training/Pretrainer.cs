using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Loss;
using SimClr.Core.Optim;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>
/// SimCLR pre-training: the shared training loop driving <see cref="ContrastiveStep"/> over one in-process replica, or
/// over the given replica endpoints (gRPC workers). This process always keeps a replica of its own: it is the
/// replicas' starting state (pushed to them before the first step), and before every checkpoint and kNN evaluation it
/// takes the state of replica 0 (all replicas are bit-identical; replica 0's BatchNorm running statistics are kept,
/// as PyTorch DDP broadcasts rank 0's).
/// </summary>
public sealed class Pretrainer : Trainer
{
    private readonly ImageDataSet _test;
    private readonly ContrastiveReplica _replica;
    private readonly ContrastiveStep _step;
    private readonly bool _remote;
    private long _steps;
    private long _pulledAt = -1;

    public Pretrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer,
        IReadOnlyList<IReplicaEndpoint>? replicas = null)
        : base(config, train, run, observer)
    {
        _test = test;
        _replica = ContrastiveReplica.Build(config, train.Channels, train.Mean, train.Std, Device);
        _remote = replicas is { Count: > 0 };
        var loss = new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp);
        _step = new ContrastiveStep(_remote ? replicas! : [new LocalReplicaEndpoint(_replica)], loss, config.Batching);
        // fail now, not at the first step, when the batch cannot be split this way
        ShardPlan.Build(Enumerable.Range(0, config.BatchSize).Select(i => (long)i).ToArray(), _step.Replicas.Count, config.Batching.Chunks, config.Batching.BatchNorm);
    }

    protected override string StageName => "pretrain";

    protected override nn.Module Network => _replica.Network;

    protected override MomentumOptimizer Optimizer => _replica.Optimizer;

    protected override int ViewsPerImage => 2;

    protected override void BeforeFirstStep()
    {
        if (Config.Batching.Chunks > 1 || _step.Replicas.Count > 1)
            Observer.Message($"each step: {_step.Replicas.Count} replica(s) x {Config.Batching.Chunks} chunk(s), BatchNorm groups {_step.Mode.ToString().ToLowerInvariant()}");
        if (!_remote) return;
        var state = _replica.State().Select(t => NamedBytes.From(t.Name, t.Tensor)).ToList();
        var checksums = Task.WhenAll(_step.Replicas.Select(r => r.LoadStateAsync(state, CancellationToken.None))).GetAwaiter().GetResult();
        string expected = _replica.Checksum();
        for (int w = 0; w < checksums.Length; w++)
        {
            if (checksums[w] != expected)
                throw new ReplicaDivergenceException($"{_step.Replicas[w].Name} loaded the starting state but reports checksum {checksums[w]}, expected {expected}");
        }
        _pulledAt = _steps;
    }

    protected override void BeforeReadingState()
    {
        if (!_remote || _pulledAt == _steps) return;
        var state = _step.Replicas[0].SaveStateAsync(CancellationToken.None).GetAwaiter().GetResult();
        new LocalReplicaEndpoint(_replica).LoadStateAsync(state, CancellationToken.None).GetAwaiter().GetResult();
        _pulledAt = _steps;
    }

    protected override (double Loss, Dictionary<string, double> Metrics) TrainStep(long[] indices, int epoch, double learningRate)
    {
        using var scope = NewDisposeScope();
        var outcome = _step.Run(Train, indices, epoch, StepIndex, learningRate);
        if (double.IsFinite(outcome.Loss)) _steps++;
        return (outcome.Loss, []);
    }

    protected override Dictionary<string, double> EndOfEpoch(int epoch, bool last)
    {
        var result = new Dictionary<string, double>();
        if (Config.KnnEveryEpochs > 0 && ((epoch + 1) % Config.KnnEveryEpochs == 0 || last))
        {
            BeforeReadingState();
            using var trainFeatures = FeatureExtractor.Extract(_replica.Network.Backbone, Train, Device);
            using var testFeatures = FeatureExtractor.Extract(_replica.Network.Backbone, _test, Device);
            result["knn_accuracy"] = KnnClassifier.Accuracy(trainFeatures, Train.Labels, testFeatures, _test.Labels, Train.ClassNames.Count, Config.KnnK, Config.KnnTemperature);
        }
        return result;
    }

    public override void Dispose()
    {
        _replica.Dispose();
    }
}
