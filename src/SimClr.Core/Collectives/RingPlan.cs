using SimClr.Core.Replica;

namespace SimClr.Core.Collectives;

/// <summary>One attempt at a step's ring all-reduce (<see cref="RingAllReduce"/>): a fresh id, the replicas' peer
/// addresses in ring order (a replica's rank is its place in the list), the precision, the piece size, and the bucket
/// cap in bytes (<see cref="ModelReplica.Buckets"/>; 0: one bucket after the whole backward).</summary>
public sealed record RingPlan(ulong Id, IReadOnlyList<string> Peers, ReducePrecision Precision, int PieceElements, long BucketBytes = 0);
