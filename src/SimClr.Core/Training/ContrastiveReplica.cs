using SimClr.Core.Augmentation;
using SimClr.Core.Models;
using SimClr.Core.Optim;
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

    public ContrastiveReplica(SimClrNetwork network, MomentumOptimizer optimizer, ViewAugmenter augmenter, Device device)
    {
        Network = network;
        Optimizer = optimizer;
        Augmenter = augmenter;
        Device = device;
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

    public void Dispose() => ReleaseGraph();
}
