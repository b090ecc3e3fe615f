using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// kNN evaluation: the frozen backbone's features of the labelled training images (all, or a labelFraction of them)
/// are the bank, each test image takes the weighted vote of its knnK nearest (cosine similarity, weights
/// exp(s / knnTemperature)). No training at all: what the features alone know.
/// </summary>
public static class KnnEvaluation
{
    public static StageResult Run(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer, string? pretrained)
    {
        var device = new Device(config.Device);
        using var backbone = FrozenBackbone.Load(config, train.Channels, pretrained, device);
        observer.Started("knn-eval", 0, 1);
        var (trainFeatures, testFeatures) = FrozenBackbone.Features(backbone, train, test, device, observer, "knn-eval", pretrained is null);
        using var _ = trainFeatures;
        using var __ = testFeatures;
        double accuracy = KnnClassifier.Accuracy(trainFeatures, train.Labels, testFeatures, test.Labels, train.ClassNames.Count, config.KnnK, config.KnnTemperature);
        using (var metrics = new MetricsLog(run))
        {
            metrics.Write("epoch", 1, new Dictionary<string, double> { ["epoch"] = 1, ["test_accuracy"] = accuracy, ["bank"] = train.Count },
                new Dictionary<string, string> { ["stage"] = "knn-eval" });
        }
        observer.Step(new StepReport(1, 1, 0, double.NaN, double.NaN, 0, TimeSpan.Zero));
        observer.Finished();
        return new StageResult(run.Path, null, new Dictionary<string, double> { ["test_accuracy"] = accuracy }, Completed: true);
    }
}
