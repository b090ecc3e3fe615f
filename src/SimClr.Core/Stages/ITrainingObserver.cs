namespace SimClr.Core.Stages;

/// <summary>What a training run tells the outside world; the CLI draws progress bars or prints plain lines.</summary>
public interface ITrainingObserver
{
    void Started(string what, long firstStep, long totalSteps);

    void Step(StepReport report);

    void Message(string text);

    void Finished();
}
