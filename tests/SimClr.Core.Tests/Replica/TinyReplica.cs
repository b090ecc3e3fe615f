using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Replica;

/// <summary>An eighth-width ResNet-18 replica, seeded (initialised on the CPU, then moved to <c>device</c>): SimCLR (16-8
/// head) or, with classes, a classifier.</summary>
internal static class TinyReplica
{
    public static ModelReplica Build(int seed, int classes = 0, BatchNormStatistics batchNorm = BatchNormStatistics.Batch, bool ownsModel = false, string device = "cpu")
    {
        manual_seed(seed);
        nn.Module<Tensor, Tensor> network = classes == 0
            ? new SimClrNetwork(new ResNetOptions(0.125), projectionHidden: 16, projectionDim: 8)
            : new ResNet(new ResNetOptions(0.125), classes);
        var on = TestDevices.Get(device);
        network.to(on);
        var optimizer = new MomentumOptimizer(network.named_parameters().Select(p => (p.name, p.parameter)), new OptimizerOptions());
        return new ModelReplica(network, optimizer, new ViewAugmenter(new AugmentationOptions(), 5, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]), on, ownsModel)
        {
            BatchNorm = batchNorm,
        };
    }
}
