using System.Diagnostics;
using TorchSharp;

namespace SimClr.Core.Stages;

/// <summary>
/// An observer that samples resident memory (after a forced GC) and the number of live tensors every N steps:
/// flat after warm-up, or a leak. Used by the memory test and by `simclr bench memory`.
/// </summary>
public sealed class MemoryProbe(int every) : ITrainingObserver
{
    public List<(long Step, long Rss, long LiveTensors)> Samples { get; } = [];

    public void Started(string what, long firstStep, long totalSteps) { }

    public void Step(StepReport report)
    {
        if (report.Step % every != 0) return;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var process = Process.GetCurrentProcess();
        Samples.Add((report.Step, process.WorkingSet64, DisposeScopeManager.Statistics.ThreadTotalLiveCount));
    }

    public void Message(string text) { }

    public void Finished() { }
}
