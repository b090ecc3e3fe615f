namespace SimClr.Core.Training;

/// <summary>Progress of a step, for a progress bar or a log line.</summary>
public readonly record struct StepReport(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double ViewsPerSecond, TimeSpan Elapsed)
{
    public TimeSpan Remaining => Step <= 0 ? TimeSpan.Zero : Elapsed / Step * (TotalSteps - Step);
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
