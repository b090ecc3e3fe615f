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
        observer.Message(config.LinearEvalAugment
            ? "linear-eval: training on features of random crops and flips, each epoch anew (linearEvalAugment; the paper's protocol)"
            : "linear-eval: training on the cached features of the plain images");
        var result = LinearProbe.Train(trainFeatures, train.Labels, testFeatures, test.Labels, train.ClassNames.Count, config.Epochs,
            Math.Min(config.BatchSize, train.Count), config.Optimizer.BaseLearningRate, config.Optimizer.WeightDecay, config.Seed,
            (epoch, trainAccuracy, testAccuracy) =>
            {
                metrics.Write("epoch", epoch + 1, new Dictionary<string, double> { ["epoch"] = epoch + 1, ["train_accuracy"] = trainAccuracy, ["test_accuracy"] = testAccuracy },
                    new Dictionary<string, string> { ["stage"] = "linear-eval" });
                observer.Step(new StepReport(epoch + 1, config.Epochs, epoch, double.NaN, double.NaN, 0, TimeSpan.Zero));
            },
            config.LinearEvalAugment ? AugmentedFeatures(config, backbone, train, device) : null);
        observer.Finished();
        return new StageResult(run.Path, null, new Dictionary<string, double>
        {
            ["train_accuracy"] = result.TrainAccuracy[^1],
            ["test_accuracy"] = result.FinalTestAccuracy,
        }, Completed: true);
    }

    /// <summary>The paper's linear evaluation: each training batch's features from a random crop and flip of its images
    /// (the config's crop range, no colour, no blur) through the frozen backbone (in eval mode, <see cref="FrozenBackbone"/>), every
    /// epoch anew.</summary>
    private static Func<int, long[], Tensor> AugmentedFeatures(RunConfig config, ResNet backbone, ImageDataSet train, Device device)
    {
        var options = config.Augment with { OutputSize = train.Height, JitterProbability = 0, GrayscaleProbability = 0, BlurProbability = 0 };
        var augmenter = new Augmentation.ViewAugmenter(options, config.Seed, train.Mean, train.Std);
        return (epoch, indices) =>
        {
            using var noGrad = no_grad();
            var items = indices.Select(i => (i, 0)).ToArray();
            using var images = train.Batch(indices).to(device);
            using var views = augmenter.Views(images, items, epoch);
            return backbone.Features(views);
        };
    }
}
