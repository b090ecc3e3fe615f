using SimClr.Core.Collectives;
using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>
/// Backward and NCCL's all-reduce between the workers' GPUs in one call each (<see cref="IReplicaEndpoint.BackwardReduceAsync"/>
/// with a <see cref="CommunicatorPlan"/>): each bucket is summed on the devices as backward finishes it, and the sum stays
/// there for the apply; neither this process nor the host of a worker moves a gradient.
/// The communicator lives as long as the replicas stay the same: replica 0 makes its unique id
/// (<see cref="IReplicaEndpoint.NewCommunicatorIdAsync"/>), the plan hands it to every replica, and each joins its rank once.
/// When an attempt fails (a replica lost, a communicator broken) the id is dropped; the survivors have aborted theirs
/// (the step's other calls are cancelled, which aborts a worker's communicator), and the redo's plan carries a new id made
/// by the new replica 0, over the survivors. With one replica left there is nothing to sum: the star's single-replica path.
/// NCCL sums in float32 in an order fixed per communicator: the same bits on every rank, but not the ring's exact sum.
/// </summary>
public sealed class NcclReducer(ReductionOptions reduction) : IGradientReducer
{
    private readonly StarReducer _alone = new();
    private CommunicatorPlan? _communicator;
    private IReadOnlyList<IReplicaEndpoint>? _members; // the replicas _communicator was made for, in rank order

    /// <summary>Communicators made so far in this run (1 + one for each change of the replicas or failure).</summary>
    public int Communicators { get; private set; }

    public Reduction Reduce(IReadOnlyList<IReplicaEndpoint> replicas, IReadOnlyList<FloatBlock> dz, StepClock clock, CancellationToken cancel)
    {
        if (replicas.Count < 2) return _alone.Reduce(replicas, dz, clock, cancel);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        try
        {
            var communicator = Communicator(replicas, cancel);
            var plan = new RingPlan((ulong)Random.Shared.NextInt64(1, long.MaxValue), [], reduction.Precision, 0, reduction.BucketBytes, communicator);
            var counts = PhaseResults.RingValues(clock.Phase(replicas, (r, w) => r.BackwardReduceAsync(dz[w], plan, w, abort.Token), abort), replicas, cancel);
            return new Reduction(StepGradient.Ring, counts.Max()); // each rank counted the whole sum
        }
        catch (StepFailedException e)
        {
            Forget();
            throw new StepFailedException(e.Failure with { Nccl = true });
        }
        catch
        {
            Forget();
            throw;
        }
    }

    /// <summary>Whatever failed, the next attempt starts a new communicator.</summary>
    private void Forget()
    {
        _communicator = null;
        _members = null;
    }

    /// <summary>The communicator of <paramref name="replicas"/>: the current one while they are the same, else a new id from
    /// replica 0.</summary>
    private CommunicatorPlan Communicator(IReadOnlyList<IReplicaEndpoint> replicas, CancellationToken cancel)
    {
        if (_communicator is not null && _members is not null && _members.SequenceEqual(replicas, ReferenceEqualityComparer.Instance)) return _communicator;
        byte[] id;
        try
        {
            id = replicas[0].NewCommunicatorIdAsync(cancel).GetAwaiter().GetResult();
        }
        catch (ReplicaLostException e)
        {
            throw new StepFailedException(new StepFailure([replicas[0]], e.Message));
        }
        _communicator = new CommunicatorPlan(id, replicas.Count);
        _members = [.. replicas];
        Communicators++;
        return _communicator;
    }
}
