namespace SimClr.Core.Step;

/// <summary>What follows a failed attempt at a step.</summary>
public enum Recovery
{
    /// <summary>Take the step again over the replicas left: the same batch, views and BN groups.</summary>
    Redo,

    /// <summary>The survivors applied the step: go on with them.</summary>
    GoOn,

    /// <summary>Below faults.minWorkers: wait for lost workers to rejoin, then redo (or go on, when applied).</summary>
    Wait,

    /// <summary>The run stops.</summary>
    Stop,
}
