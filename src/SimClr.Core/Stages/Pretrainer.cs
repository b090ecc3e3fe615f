using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Loss;
using SimClr.Core.Step;

namespace SimClr.Core.Stages;

/// <summary>SimCLR pre-training: the global NT-Xent over both views of every image, a kNN monitor on the test split.</summary>
public sealed class Pretrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer,
    IReadOnlyList<IReplicaEndpoint>? replicas = null)
    : Trainer(config, train, run, observer, new ContrastiveLoss(new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp)), replicas)
{
    protected override string StageName => "pretrain";

    protected override int ViewsPerImage => 2;

    protected override Dictionary<string, double> EndOfEpoch(int epoch, bool last)
    {
        var result = new Dictionary<string, double>();
        if (Config.KnnEveryEpochs > 0 && ((epoch + 1) % Config.KnnEveryEpochs == 0 || last))
        {
            Mirror.Pull();
            using var trainFeatures = FeatureExtractor.Extract(Replica.Backbone, Train, Device);
            using var testFeatures = FeatureExtractor.Extract(Replica.Backbone, test, Device);
            result["knn_accuracy"] = KnnClassifier.Accuracy(trainFeatures, Train.Labels, testFeatures, test.Labels, Train.ClassNames.Count, Config.KnnK, Config.KnnTemperature);
        }
        return result;
    }
}
