using SimClr.Core.Collectives;

namespace SimClr.Core.Step;

/// <summary>
/// The coordinator's view of one model replica, wherever it lives: in this process (<see cref="LocalReplicaEndpoint"/>)
/// or in a worker process behind gRPC (SimClr.Coordinator). <see cref="DataParallelStep"/> drives a step through these
/// calls only, so the single-process run and the distributed run share one implementation of the step.
/// Callers block on the returned tasks from their torch thread; implementations must not need that thread. The step
/// calls return what the replica spent on its own work in them (<see cref="Timed{T}"/>).
/// </summary>
public interface IReplicaEndpoint : IDisposable
{
    string Name { get; }

    /// <summary>Whether the replica lives in this process and takes tensors where they are (dL/dz stays on its device);
    /// else the step copies what it sends to the host first, on its own (torch) thread.</summary>
    bool InProcess => false;

    /// <summary>Augments and forwards the shard's views; returns the projections [rows, d].</summary>
    Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel);

    /// <summary>Back-propagates dL/dz for the last forward; returns the local flat gradient (parameters in state
    /// order; see <see cref="GradientBytes"/>), or null when <paramref name="returnGradient"/> is false (the replica then keeps it
    /// for an <see cref="ApplyStepAsync"/> of <see cref="StepGradient.Own"/>).</summary>
    Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel);

    /// <summary>Where the other replicas' ring reaches this one, or null when it cannot take part in a ring (in-process
    /// replicas; the step then reduces through the coordinator).</summary>
    string? PeerAddress => null;

    /// <summary>Back-propagates dL/dz for the last forward, then sums the local gradient with the other replicas' over
    /// <paramref name="ring"/> as rank <paramref name="rank"/> (or over its device communicator, <see cref="RingPlan.Communicator"/>): the replica keeps the sum for an <see cref="ApplyStepAsync"/>
    /// of <see cref="StepGradient.Ring"/>. Returns the NaN and infinite values in the segment it completed (their sum over the ring is the
    /// sum's). A peer failing makes it throw <see cref="RingBrokenException"/>.</summary>
    Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel) =>
        throw new NotSupportedException($"{Name} cannot take part in a ring all-reduce");

    /// <summary>The devices' collective library this replica can sum over (NCCL: "NCCL 2.21.5 (path)"), or null; then
    /// <see cref="DeviceCollectiveProblem"/> says why not.</summary>
    string? DeviceCollective => null;

    /// <summary>Why this replica cannot take part in a device collective (no library, not a CUDA device, in this process).</summary>
    string DeviceCollectiveProblem => "it runs in the coordinator's process; NCCL sums between worker processes";

    /// <summary>A fresh unique id for a communicator of the device collective, made by this replica's library (rank 0 makes it;
    /// the step hands it to every rank with <see cref="BackwardReduceAsync"/>'s <see cref="RingPlan.Communicator"/>).</summary>
    Task<byte[]> NewCommunicatorIdAsync(CancellationToken cancel) =>
        throw new NotSupportedException($"{Name} cannot take part in a device collective: {DeviceCollectiveProblem}");

    /// <summary>Installs <paramref name="gradient"/> (sent with the call, the ring's sum, or the replica's own), takes one
    /// optimiser step, and returns what shows the replicas agree: the parameters' fingerprint or SHA-256 checksum, as
    /// <paramref name="agreement"/> asks (null allowed with <see cref="Agreement.None"/>).</summary>
    Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Agreement agreement, CancellationToken cancel);

    /// <summary>The replica's state: "model." + state_dict and "optimizer." + momentum buffers.</summary>
    Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel);

    /// <summary>Replaces the replica's state (names as <see cref="SaveStateAsync"/>); returns the parameter checksum.</summary>
    Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel);

    /// <summary>After this replica was lost: a new endpoint to the same worker when it answers again and has joined the
    /// run anew (its state still to be loaded), else null. Gives up quickly when the worker is not there.</summary>
    Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel);
}
