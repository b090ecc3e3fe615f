using SimClr.Core.Config;
using SimClr.Core.Training;

namespace SimClr.Core.Tests.Training;

public sealed class MetricsLogTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-metrics-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    /// <summary>A full disk under the TensorBoard events (a real ENOSPC: the events file is made a link to /dev/full):
    /// the error names the events folder and says what the system said, as one message.</summary>
    [Fact]
    public void A_full_disk_under_the_tensorboard_events_is_an_error_naming_the_events_folder()
    {
        var run = RunDirectory.Create(TinyRuns.Config(Stage.Pretrain, _runs, "events-full"));
        using var log = new MetricsLog(run);
        string events = Assert.Single(Directory.GetFiles(run.EventsFolder));
        File.Delete(events);
        File.CreateSymbolicLink(events, "/dev/full");
        var e = Assert.Throws<RunOutputException>(() => log.Write("step", 1, new Dictionary<string, double> { ["loss"] = 1 }));
        Assert.Equal(run.EventsFolder, e.Path);
        Assert.StartsWith($"could not write {run.EventsFolder}: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("No space left on device", e.Message, StringComparison.Ordinal);
        Assert.Single(File.ReadAllLines(run.MetricsFile)); // metrics.jsonl, on a disk with room, has the record
    }
}
