using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using SimClr.Core.Config;
using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>A replica can no longer be used: its process is gone, its connection broke, or it stopped answering.</summary>
public sealed class ReplicaLostException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The replicas lost in the failed phase (filled in by <see cref="DataParallelStep"/>).</summary>
    public IReadOnlyList<IReplicaEndpoint> Lost { get; init; } = [];

    /// <summary>True when the survivors had already applied the step (the loss happened while applying it).</summary>
    public bool StepApplied { get; init; }

    /// <summary>With <see cref="StepApplied"/>: the step's outcome on the survivors.</summary>
    public StepOutcome? Outcome { get; init; }

    /// <summary>The elastic policy gave up because fewer than faults.minWorkers are left (joiners may still come).</summary>
    public bool BelowMinimum { get; init; }
}
