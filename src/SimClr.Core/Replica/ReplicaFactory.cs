using SimClr.Core.Augmentation;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// The one way a replica is built from a run config, so the single-process trainer, every worker and the tests get
/// identical replicas: seeded initialisation, the config's model, optimiser, augmentation and BN mode. A new method
/// (another network or loss on the replica's side) starts here.
/// </summary>
public static class ReplicaFactory
{
    private static readonly Lock BuildGate = new();

    /// <summary>A replica that owns the network and optimiser it is built with. <paramref name="loadPretrained"/>: a
    /// fine-tune loads config.pretrained into the backbone (workers do not: their weights arrive with the state).</summary>
    public static ModelReplica Build(RunConfig config, int channels, double[] mean, double[] std, Device device, int classes = 0, bool loadPretrained = true)
    {
        nn.Module<Tensor, Tensor> network;
        lock (BuildGate) // torch's default generator is process-wide: seeding and initialising must not interleave with another build
        {
            manual_seed((long)config.Seed);
            var backbone = config.Backbone(channels);
            if (config.Stage == Stage.Pretrain)
            {
                network = new SimClrNetwork(backbone, config.Model.ProjectionHidden, config.Model.ProjectionDim);
            }
            else
            {
                if (classes < 2) throw new ConfigException($"a classifier needs at least 2 classes (got {classes})");
                network = new ResNet(backbone, classes);
            }
        }
        if (config.Stage == Stage.Finetune && loadPretrained) LoadPretrained((ResNet)network, config.Pretrained);
        MixedPrecision.Apply(network, config.Precision);
        network.to(device);
        var optimizer = new MomentumOptimizer(network.named_parameters().Select(p => (p.name, p.parameter)), config.Optimizer);
        return new ModelReplica(network, optimizer, new ViewAugmenter(config.Augment, config.Seed, mean, std), device, ownsModel: true)
        {
            BatchNorm = config.Model.BatchNorm,
            TimePhasesEverySteps = config.TimePhasesEverySteps,
        };
    }

    private static void LoadPretrained(ResNet network, string? pretrained)
    {
        if (pretrained is null) throw new ConfigException("finetune needs pretrained: a pre-training checkpoint or exported backbone");
        var weights = BackboneWeights.Load(pretrained);
        try
        {
            BackboneWeights.LoadInto(network, weights, pretrained);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }
}
