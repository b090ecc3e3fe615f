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
        using var backbone = FrozenBackbone.Load(config, train.Channels, pretrained, device);
        var (trainFeatures, testFeatures) = FrozenBackbone.Features(backbone, train, test, device, observer, "linear-eval", pretrained is null);
        using var _ = trainFeatures;
        using var __ = testFeatures;
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
