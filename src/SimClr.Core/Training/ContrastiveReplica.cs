using SimClr.Core.Augmentation;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>
/// The worker's half of a SimCLR step on one device: augment a shard's views, forward them to projections z
/// (keeping the graph), back-propagate a given dL/dz, and apply an optimiser step. The coordinator's half is
/// <see cref="Loss.NtXentLoss.LossAndGradient"/> over the projections of all shards. The single-process
/// pre-training runs exactly this split with one in-process replica, so both paths share the maths.
/// </summary>
public sealed class ContrastiveReplica : IDisposable
{
    private Tensor? _projections;
    private bool _ownsModel;

    public ContrastiveReplica(SimClrNetwork network, MomentumOptimizer optimizer, ViewAugmenter augmenter, Device device)
    {
        Network = network;
        Optimizer = optimizer;
        Augmenter = augmenter;
        Device = device;
    }

    /// <summary>
    /// The one way a replica is built from a run config, so the single-process trainer, every worker and the tests
    /// get identical replicas: seeded initialisation, the config's model, optimiser, augmentation and BN mode.
    /// The replica owns the network and optimiser it builds.
    /// </summary>
    public static ContrastiveReplica Build(Config.RunConfig config, int channels, double[] mean, double[] std, Device device)
    {
        manual_seed((long)config.Seed);
        var network = new SimClrNetwork(new ResNetOptions(config.Model.Width, channels), config.Model.ProjectionHidden, config.Model.ProjectionDim);
        network.to(device);
        var optimizer = new MomentumOptimizer(network.named_parameters().Select(p => (p.name, p.parameter)), config.Optimizer);
        return new ContrastiveReplica(network, optimizer, new ViewAugmenter(config.Augment, config.Seed, mean, std), device)
        {
            BatchNorm = config.Model.BatchNorm,
            _ownsModel = true,
        };
    }

    public SimClrNetwork Network { get; }

    public MomentumOptimizer Optimizer { get; }

    public ViewAugmenter Augmenter { get; }

    public Device Device { get; }

    /// <summary>Batch statistics (standard) or frozen running statistics (batch-independent outputs).</summary>
    public Config.BatchNormStatistics BatchNorm { get; init; } = Config.BatchNormStatistics.Batch;

    /// <summary>
    /// Projections of the given views, [views, d], detached (a copy the coordinator may keep); the graph stays here
    /// for <see cref="Backward"/>. <paramref name="images"/>: uint8, one row per view.
    /// </summary>
    public Tensor Forward(Tensor images, ReadOnlySpan<(long Index, int View)> views, long epoch)
    {
        ReleaseGraph();
        Network.train();
        if (BatchNorm == Config.BatchNormStatistics.Frozen)
        {
            foreach (var (_, module) in Network.named_modules())
                if (module is TorchSharp.Modules.BatchNorm2d bn) bn.eval();
        }
        using var scope = NewDisposeScope();
        var batch = Augmenter.Views(images.to(Device), views, epoch);
        _projections = Network.forward(batch).DetachFromDisposeScope(); // owned here until Backward: the caller's scope may end first
        return _projections.detach().clone().MoveToOuterDisposeScope();
    }

    /// <summary>Accumulates the parameter gradient of the global loss through this replica's graph, given dL/dz for its views.</summary>
    public void Backward(Tensor projectionGradient)
    {
        var z = _projections ?? throw new InvalidOperationException("Backward needs a Forward first");
        if (!z.shape.SequenceEqual(projectionGradient.shape))
            throw new ArgumentException($"dL/dz has shape [{string.Join(", ", projectionGradient.shape)}], the projections [{string.Join(", ", z.shape)}]");
        using var scope = NewDisposeScope();
        z.backward([projectionGradient.to(Device).to_type(z.dtype)]);
        ReleaseGraph();
    }

    public void ZeroGrad() => Optimizer.ZeroGrad();

    public void Step(double learningRate) => Optimizer.Step(learningRate);

    private void ReleaseGraph()
    {
        _projections?.Dispose();
        _projections = null;
    }

    public void Dispose()
    {
        ReleaseGraph();
        if (!_ownsModel) return;
        Optimizer.Dispose();
        Network.Dispose();
    }
}
