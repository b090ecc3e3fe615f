using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using SimClr.Core.Config;
using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>What one step reports: the global loss, and the replicas' common parameter checksum (when compared).</summary>
public sealed record StepOutcome(double Loss, string? Checksum, IReadOnlyDictionary<string, double> Metrics)
{
    /// <summary>Why the step was NOT applied (a non-finite loss or gradient), or null when it was.</summary>
    public string? NotApplied { get; init; }

    /// <summary>Where the step's time went (of the attempt that produced this outcome).</summary>
    public StepTimes? Times { get; init; }
}
