using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Loss;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>SimCLR pre-training in one process: one in-process replica, the global NT-Xent, a kNN monitor.</summary>
public sealed class Pretrainer : Trainer
{
    private readonly ImageDataSet _test;
    private readonly ContrastiveReplica _replica;
    private readonly NtXentLoss _loss;

    public Pretrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer)
        : base(config, train, run, observer)
    {
        _test = test;
        _replica = ContrastiveReplica.Build(config, train.Channels, train.Mean, train.Std, Device);
        _loss = new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp);
    }

    protected override string StageName => "pretrain";

    protected override nn.Module Network => _replica.Network;

    protected override MomentumOptimizer Optimizer => _replica.Optimizer;

    protected override int ViewsPerImage => 2;

    protected override (double Loss, Dictionary<string, double> Metrics) TrainStep(long[] indices, int epoch, double learningRate)
    {
        using var scope = NewDisposeScope();
        var views = new (long Index, int View)[2 * indices.Length];
        for (int b = 0; b < indices.Length; b++)
        {
            views[2 * b] = (indices[b], 0);
            views[2 * b + 1] = (indices[b], 1);
        }
        var images = Train.Batch(indices).repeat_interleave(2, dim: 0);
        var z = _replica.Forward(images, views, epoch);
        var (loss, gradient) = _loss.LossAndGradient(z);
        if (!double.IsFinite(loss)) return (loss, []);
        _replica.ZeroGrad();
        _replica.Backward(gradient);
        _replica.Step(learningRate);
        return (loss, []);
    }

    protected override Dictionary<string, double> EndOfEpoch(int epoch, bool last)
    {
        var result = new Dictionary<string, double>();
        if (Config.KnnEveryEpochs > 0 && ((epoch + 1) % Config.KnnEveryEpochs == 0 || last))
        {
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
