using SimClr.Core.Collectives;
using SimClr.Core.Replica;

namespace SimClr.Core.Step;

/// <summary>A replica in this process (its <see cref="ReplicaSession"/>), driven synchronously on the caller's (torch) thread.</summary>
public sealed class LocalReplicaEndpoint(ModelReplica replica, string name = "local") : IReplicaEndpoint
{
    public ReplicaSession Session { get; } = new(replica);

    public ModelReplica Replica => Session.Replica;

    public string Name { get; } = name;

    public bool InProcess => true;

    public Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel) => Task.FromResult(Session.Forward(work));

    public Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel) =>
        Task.FromResult(Session.Backward(gradient, returnGradient));

    public Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel) =>
        Task.FromResult(Session.Apply(learningRate, gradient, agreement));

    public Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel) => Task.FromResult(Session.SaveState());

    public Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel) => Task.FromResult(Session.LoadState(state));

    public Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Task.FromResult<IReplicaEndpoint?>(null);

    /// <summary>The replica belongs to whoever built it (this process's trainer disposes its own).</summary>
    public void Dispose()
    {
    }
}
