using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// The coordinator's view of one model replica, wherever it lives: in this process (<see cref="LocalReplicaEndpoint"/>)
/// or in a worker process behind gRPC (SimClr.Coordinator). <see cref="DataParallelStep"/> drives a step through these
/// calls only, so the single-process run and the distributed run share one implementation of the step.
/// Callers block on the returned tasks from their torch thread; implementations must not need that thread.
/// </summary>
public interface IReplicaEndpoint : IDisposable
{
    string Name { get; }

    /// <summary>Augments and forwards the shard's views; returns the projections [rows, d].</summary>
    Task<FloatBlock> ForwardAsync(ShardWork work, CancellationToken cancel);

    /// <summary>Back-propagates dL/dz for the last forward; returns the local flat gradient (parameters in state
    /// order; see <see cref="GradientBytes"/>), or null when <paramref name="returnGradient"/> is false (the endpoint then keeps it for
    /// <see cref="ApplyStepAsync"/> with no gradient).</summary>
    Task<GradientBytes?> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel);

    /// <summary>Where the other replicas' ring reaches this one, or null when it cannot take part in a ring (in-process
    /// replicas; the step then reduces through the coordinator).</summary>
    string? PeerAddress => null;

    /// <summary>Back-propagates dL/dz for the last forward, then sums the local gradient with the other replicas' over
    /// <paramref name="ring"/> as rank <paramref name="rank"/>: the replica keeps the sum for <see cref="ApplyStepAsync"/>
    /// with no gradient. Returns the NaN and infinite values in the segment it completed (their sum over the ring is the
    /// sum's). A peer failing makes it throw <see cref="RingBrokenException"/>.</summary>
    Task<long> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel) =>
        throw new NotSupportedException($"{Name} cannot take part in a ring all-reduce");

    /// <summary>Installs <paramref name="gradient"/> (or, when null, the ring's sum after <see cref="BackwardReduceAsync"/>,
    /// else the local gradient), takes one optimiser step, and returns the parameter checksum (null allowed when
    /// <paramref name="checksum"/> is false).</summary>
    Task<string?> ApplyStepAsync(long step, double learningRate, byte[]? gradient, bool checksum, CancellationToken cancel);

    /// <summary>The replica's state: "model." + state_dict and "optimizer." + momentum buffers.</summary>
    Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel);

    /// <summary>Replaces the replica's state (names as <see cref="SaveStateAsync"/>); returns the parameter checksum.</summary>
    Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel);

    /// <summary>What the replica spent on its own work (<see cref="ReplicaTimes"/>) in the Forward, Backward and
    /// ApplyStep calls since the last call of this; the counters restart. <see cref="ReplicaTimes.None"/> when the
    /// endpoint cannot tell (the step then counts those calls' whole time as transfer).</summary>
    ReplicaTimes TakeTimes() => ReplicaTimes.None;

    /// <summary>After this replica was lost: a new endpoint to the same worker when it answers again and has joined the
    /// run anew (its state still to be loaded), else null. Gives up quickly when the worker is not there.</summary>
    Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel);
}
