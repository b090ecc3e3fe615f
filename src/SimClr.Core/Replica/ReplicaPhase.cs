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
}
