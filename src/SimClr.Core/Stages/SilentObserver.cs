namespace SimClr.Core.Stages;

/// <summary>Discards everything (tests, benchmarks).</summary>
public sealed class SilentObserver : ITrainingObserver
{
    public static SilentObserver Instance { get; } = new();

    public void Started(string what, long firstStep, long totalSteps) { }

    public void Step(StepReport report) { }

    public void Message(string text) { }

    public void Finished() { }
}
