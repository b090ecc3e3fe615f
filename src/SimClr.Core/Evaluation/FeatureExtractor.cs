using SimClr.Core.Augmentation;
using SimClr.Core.Data;
using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Core.Evaluation;

/// <summary>Backbone features of a whole data set with the evaluation transform, BN in eval mode, no graph.</summary>
public static class FeatureExtractor
{
    public static Tensor Extract(ResNet backbone, ImageDataSet data, Device device, int batchSize = 512)
    {
        bool wasTraining = backbone.training;
        backbone.eval();
        try
        {
            var evaluation = new ViewAugmenter(AugmentationOptions.None with { OutputSize = data.Height }, 0, data.Mean, data.Std);
            using var noGrad = no_grad();
            var parts = new List<Tensor>();
            for (int start = 0; start < data.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(batchSize, data.Count - start);
                var images = data.Images.narrow(0, start, n).to(device);
                parts.Add(backbone.Features(evaluation.Evaluate(images)).MoveToOuterDisposeScope());
            }
            var features = cat(parts, 0);
            foreach (var p in parts) p.Dispose();
            return features;
        }
        finally
        {
            backbone.train(wasTraining);
        }
    }
}
