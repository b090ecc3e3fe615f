namespace SimClr.Core.Replica;

/// <summary>The parts of a replica's work that <see cref="PhaseTimer"/> tells apart.</summary>
public enum ReplicaPhase
{
    Augment,
    Forward,
    Reforward,
    Backward,
    Optimizer,

    /// <summary>Copying finished gradient buckets out during backward (serialisation, not backward).</summary>
    Handover,

    /// <summary>Summing buckets with the other replicas on the device during backward (NCCL): reported as the ring's time.</summary>
    Collective,
}
