namespace SimClr.Core.Training;

/// <summary>Progress of a step, for a progress bar or a log line. <paramref name="Elapsed"/> is the time since step
/// <paramref name="FirstStep"/> (where this process started or resumed the run).</summary>
public readonly record struct StepReport(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double ViewsPerSecond, TimeSpan Elapsed,
    long FirstStep = 0)
{
    /// <summary>At the pace of the steps this process took (not of the steps before a resume, which took none of its time).</summary>
    public TimeSpan Remaining => Step <= FirstStep ? TimeSpan.Zero : Elapsed / (Step - FirstStep) * (TotalSteps - Step);
}

/// <summary>What a training run tells the outside world; the CLI draws progress bars or prints plain lines.</summary>
public interface ITrainingObserver
{
    void Started(string what, long firstStep, long totalSteps);

    void Step(StepReport report);

    void Message(string text);

    void Finished();
}

/// <summary>Discards everything (tests, benchmarks).</summary>
public sealed class SilentObserver : ITrainingObserver
{
    public static SilentObserver Instance { get; } = new();

    public void Started(string what, long firstStep, long totalSteps) { }

    public void Step(StepReport report) { }

    public void Message(string text) { }

    public void Finished() { }
}
