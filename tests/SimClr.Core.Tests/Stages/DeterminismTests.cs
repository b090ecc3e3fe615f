using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Stages;

namespace SimClr.Core.Tests.Stages;

/// <summary>
/// The same seed twice gives the same bits, with 2 torch threads, at the widths the tests and configs use. On an AMD
/// EPYC (AVX-512) this failed before convolutions padded their channels to whole oneDNN blocks: width 0.125 skipped
/// steps for non-finite gradients at random and ended with most tensors different.
/// </summary>
public sealed class DeterminismTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-determinism-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    [Theory]
    [InlineData(0.125)] // the tests' width
    [InlineData(0.25)]  // the quickstart's
    [InlineData(0.375)] // 24 channels: partly filled blocks in every stage
    public async Task Two_runs_with_one_seed_and_two_threads_end_bit_identical(double width)
    {
        var config = TinyRuns.Config(Stage.Pretrain, _runs, "a") with
        {
            Threads = 2,
            Epochs = 2,
            KnnEveryEpochs = 0,
            CheckpointEverySteps = 0,
            Model = new ModelOptions { Width = width, ProjectionHidden = 16, ProjectionDim = 8 },
        };
        var first = await Run(config with { RunName = $"w{width}-first" });
        var second = await Run(config with { RunName = $"w{width}-second" });
        Assert.Equal(first.Keys.Order(), second.Keys.Order());
        foreach (var (name, bytes) in first)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(second[name]), $"{name} differs between two runs with one seed");
            Assert.DoesNotContain(float.NaN, AsFloats(name, bytes));
        }
    }

    private static float[] AsFloats(string name, byte[] bytes) =>
        name.EndsWith("num_batches_tracked", StringComparison.Ordinal) ? [] : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();

    private static async Task<Dictionary<string, byte[]>> Run(RunConfig config)
    {
        var result = await StageRunner.RunAsync(config, RunDirectory.Create(config), SilentObserver.Instance);
        Assert.True(result.Completed);
        using var checkpoint = Checkpoint.Load(result.CheckpointPath!);
        Assert.Equal("0", checkpoint.Extra.GetValueOrDefault(CheckpointKeeper.SkippedStepsKey, "0")); // no step skipped as non-finite
        return checkpoint.Model.ToDictionary(kv => kv.Key, kv => kv.Value.cpu().bytes.ToArray());
    }
}
