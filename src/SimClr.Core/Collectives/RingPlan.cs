using SimClr.Core.Replica;

namespace SimClr.Core.Collectives;

/// <summary>One attempt at a step's reduction among the workers: a fresh id, the replicas' peer addresses in ring order (a
/// replica's rank is its place in the list), the precision, the piece size, and the bucket cap in bytes
/// (<see cref="ModelReplica.Buckets"/>; 0: one bucket after the whole backward). With <paramref name="Communicator"/>
/// the buckets are summed on the devices by the collective library's communicator instead (NCCL; peers, precision and
/// pieces unused): see <see cref="CommunicatorPlan"/>.</summary>
public sealed record RingPlan(ulong Id, IReadOnlyList<string> Peers, ReducePrecision Precision, int PieceElements, long BucketBytes = 0,
    CommunicatorPlan? Communicator = null);

/// <summary>A communicator of the devices' collective library (NCCL) over a step's replicas: the unique id rank 0 made, and
/// the ranks (the replicas, in replica order). A worker keeps its communicator while the id stays the same; a new id
/// (new ranks after a loss or a rejoin, or after a failure) makes it abort the old one and join the new.</summary>
public sealed record CommunicatorPlan(byte[] UniqueId, int Ranks)
{
    /// <summary>The id's first bytes in hex, for logs.</summary>
    public string Short => Convert.ToHexString(UniqueId.AsSpan(0, Math.Min(6, UniqueId.Length))).ToLowerInvariant();
}
