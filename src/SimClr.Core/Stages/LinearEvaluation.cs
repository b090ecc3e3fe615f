using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// The linear evaluation protocol: a truly frozen backbone (eval-mode BN, no gradient; features extracted once)
/// and a linear classifier trained on its features. With no pretrained weights it probes a randomly initialised
/// backbone: the baseline pre-training has to beat.
/// </summary>
public static class LinearEvaluation
{
    public static StageResult Run(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer, string? pretrained)
    {
        var device = new Device(config.Device);
        manual_seed((long)config.Seed);
        using var backbone = new ResNet18(new ResNetOptions(config.Model.Width, train.Channels));
        if (pretrained is not null)
        {
            var weights = BackboneWeights.Load(pretrained);
            try
            {
                BackboneWeights.LoadInto(backbone, weights, pretrained);
            }
            finally
            {
                foreach (var t in weights.Values) t.Dispose();
            }
        }
        backbone.to(device);
        foreach (var p in backbone.parameters()) p.requires_grad = false;
        observer.Message($"linear-eval: extracting frozen {(pretrained is null ? "randomly initialised" : "pre-trained")} features ({train.Count} train, {test.Count} test)");
        using var trainFeatures = FeatureExtractor.Extract(backbone, train, device);
        using var testFeatures = FeatureExtractor.Extract(backbone, test, device);
        using var metrics = new MetricsLog(run);
        observer.Started("linear-eval", 0, config.Epochs);
        var result = LinearProbe.Train(trainFeatures, train.Labels, testFeatures, test.Labels, train.ClassNames.Count, config.Epochs,
            Math.Min(config.BatchSize, train.Count), config.Optimizer.BaseLearningRate, config.Optimizer.WeightDecay, config.Seed,
            (epoch, trainAccuracy, testAccuracy) =>
            {
                metrics.Write("epoch", epoch + 1, new Dictionary<string, double> { ["epoch"] = epoch + 1, ["train_accuracy"] = trainAccuracy, ["test_accuracy"] = testAccuracy },
                    new Dictionary<string, string> { ["stage"] = "linear-eval" });
                observer.Step(new StepReport(epoch + 1, config.Epochs, epoch, double.NaN, double.NaN, 0, TimeSpan.Zero));
            });
        observer.Finished();
        return new StageResult(run.Path, null, new Dictionary<string, double>
        {
            ["train_accuracy"] = result.TrainAccuracy[^1],
            ["test_accuracy"] = result.FinalTestAccuracy,
        }, Completed: true);
    }
}
