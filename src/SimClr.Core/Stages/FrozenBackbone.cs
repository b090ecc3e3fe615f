using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Evaluation;
using SimClr.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>A backbone for evaluation: pre-trained weights (or a random initialisation), no gradients, BatchNorm in
/// eval mode (its running statistics), on the run's device; and the features it gives a labelled training set and the
/// test set.</summary>
public static class FrozenBackbone
{
    /// <summary>The backbone of <paramref name="pretrained"/> (null: randomly initialised with the run's seed).</summary>
    public static ResNet Load(RunConfig config, int channels, string? pretrained, Device device)
    {
        manual_seed((long)config.Seed);
        var backbone = new ResNet(config.Backbone(channels));
        try
        {
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
            MixedPrecision.Apply(backbone, config.Precision);
            foreach (var p in backbone.parameters()) p.requires_grad = false;
            backbone.eval();
            return backbone;
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
    }

    /// <summary>The frozen features of the training images and of the test images.</summary>
    public static (Tensor Train, Tensor Test) Features(ResNet backbone, ImageDataSet train, ImageDataSet test, Device device, ITrainingObserver observer, string stage, bool random)
    {
        observer.Message($"{stage}: extracting frozen {(random ? "randomly initialised" : "pre-trained")} features ({train.Count} train, {test.Count} test)");
        var trainFeatures = FeatureExtractor.Extract(backbone, train, device);
        try
        {
            return (trainFeatures, FeatureExtractor.Extract(backbone, test, device));
        }
        catch
        {
            trainFeatures.Dispose();
            throw;
        }
    }
}
