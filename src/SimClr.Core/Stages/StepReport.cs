namespace SimClr.Core.Stages;

/// <summary>Progress of a step, for a progress bar or a log line. <paramref name="Elapsed"/> is the time since step
/// <paramref name="FirstStep"/> (where this process started or resumed the run).</summary>
public readonly record struct StepReport(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double ViewsPerSecond, TimeSpan Elapsed,
    long FirstStep = 0)
{
    /// <summary>At the pace of the steps this process took (not of the steps before a resume, which took none of its time).</summary>
    public TimeSpan Remaining => Step <= FirstStep ? TimeSpan.Zero : Elapsed / (Step - FirstStep) * (TotalSteps - Step);
}
