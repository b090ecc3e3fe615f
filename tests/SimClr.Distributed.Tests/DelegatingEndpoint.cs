using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using SimClr.Core.Step;

namespace SimClr.Distributed.Tests;

/// <summary>An endpoint that passes every call to another; tests override the calls they want to disturb.</summary>
internal abstract class DelegatingEndpoint(IReplicaEndpoint inner) : IReplicaEndpoint
{
    protected IReplicaEndpoint Inner { get; } = inner;

    public virtual string Name => Inner.Name;

    public virtual string? PeerAddress => Inner.PeerAddress;

    public virtual bool InProcess => Inner.InProcess;

    public virtual string? DeviceCollective => Inner.DeviceCollective;

    public virtual string DeviceCollectiveProblem => Inner.DeviceCollectiveProblem;

    public virtual Task<byte[]> NewCommunicatorIdAsync(CancellationToken cancel) => Inner.NewCommunicatorIdAsync(cancel);

    public virtual Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel) => Inner.ForwardAsync(work, cancel);

    public virtual Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel) =>
        Inner.BackwardAsync(gradient, returnGradient, cancel);

    public virtual Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel) =>
        Inner.BackwardReduceAsync(gradient, ring, rank, cancel);

    public virtual Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel) =>
        Inner.ApplyStepAsync(step, learningRate, gradient, agreement, cancel);

    public virtual Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel) => Inner.SaveStateAsync(cancel);

    public virtual Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel) => Inner.LoadStateAsync(state, cancel);

    public virtual Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Inner.TryReconnectAsync(cancel);

    public virtual void Dispose() => Inner.Dispose();
}
