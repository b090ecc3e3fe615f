namespace SimClr.Core.Step;

/// <summary>How a step ended.</summary>
public enum StepStatus
{
    /// <summary>Every replica (still in the run) applied it.</summary>
    Applied,

    /// <summary>Not applied: the loss or the summed gradient was not finite; the weights are unchanged.</summary>
    Skipped,

    /// <summary>The run cannot go on (workers lost under fail-fast or below faults.minWorkers, or a ring that keeps
    /// breaking); <see cref="StepResult.AppliedBeforeStop"/> says whether the survivors applied the step first.</summary>
    Stopped,
}
