using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Loss;
using SimClr.Core.Step;

namespace SimClr.Core.Stages;

/// <summary>SimCLR pre-training: the global NT-Xent over both views of every image, a kNN monitor on the test split
/// (its bank: <paramref name="bank"/>, the labelled training images; by default the training images themselves).</summary>
public sealed class Pretrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer,
    IReadOnlyList<IReplicaEndpoint>? replicas = null, ImageDataSet? bank = null)
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
            var labelled = bank ?? Train;
            using var trainFeatures = FeatureExtractor.Extract(Replica.Backbone, labelled, Device);
            using var testFeatures = FeatureExtractor.Extract(Replica.Backbone, test, Device);
            result["knn_accuracy"] = KnnClassifier.Accuracy(trainFeatures, labelled.Labels, testFeatures, test.Labels, labelled.ClassNames.Count, Config.KnnK, Config.KnnTemperature);
        }
        return result;
    }
}
