using System.Diagnostics;
using System.Security.Cryptography;
using SimClr.Core.Checkpoints;

namespace SimClr.Distributed.Tests;

/// <summary>
/// A checkpoint write that the operating system refuses, for real: the run is resumed under a file-size limit
/// (`ulimit -f`, with SIGXFSZ ignored so the write fails with EFBIG instead of killing the process), smaller than a
/// checkpoint. Every write fails; the previous checkpoint must stay byte for byte, and the user must be told.
/// </summary>
public sealed class FullDiskTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-fulldisk-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private (int Code, string Output) Simclr(string limitKb, params string[] args)
    {
        string simclr = Path.Combine(AppContext.BaseDirectory, "simclr");
        string quoted = string.Join(' ', args.Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var info = new ProcessStartInfo("bash", ["-c", $"trap '' XFSZ; ulimit -f {limitKb}; exec '{simclr}' {quoted}"]);
        info.Environment["DOTNET_EnableWriteXorExecute"] = "0"; // the runtime's double-mapped code heap is a file too
        return SimclrProcess.Run(info);
    }

    private string[] Tiny(string runs) =>
        ["--plain", "--set", "data.name=synthetic-shapes", "--set", "data.syntheticTrain=64", "--set", "data.syntheticTest=16",
            "--set", "model.width=0.125", "--set", "model.projectionHidden=16", "--set", "model.projectionDim=8", "--set", "batchSize=16",
            "--set", "threads=1", "--set", "knnEveryEpochs=0", "--set", "checkpointEverySteps=2", "--set", $"runsFolder={runs}", "--set", "runName=r"];

    /// <summary>
    /// The disk fills up outside a checkpoint: metrics.jsonl refuses its next line (a real ENOSPC: the file is made a
    /// link to /dev/full, which refuses every write). The user must be told which file, the run must keep its state in a
    /// final checkpoint (the checkpoints folder still has room), and exit with the disk's exit code, not a stack trace.
    /// </summary>
    [Fact]
    public void A_full_disk_under_metrics_jsonl_names_the_file_writes_a_final_checkpoint_and_exits_5()
    {
        string runs = Path.Combine(_folder, "runs");
        var (code, output) = Simclr("unlimited", ["pretrain", .. Tiny(runs), "--set", "epochs=1"]);
        Assert.True(code == 0, output);
        string run = Path.Combine(runs, "r");
        string metrics = Path.Combine(run, "metrics.jsonl");
        File.Delete(metrics);
        File.CreateSymbolicLink(metrics, "/dev/full");

        (code, output) = Simclr("unlimited", "pretrain", "--plain", "--resume", run, "--set", "epochs=2");
        Assert.True(code == 5, $"exit code {code}:\n{output}");
        Assert.Contains($"could not write {metrics}", output); // which file
        Assert.Contains("No space left on device", output); // what the system said
        string final = Path.Combine(run, "checkpoints", "step-00000005.safetensors"); // step 5 was the first one it could not log
        Assert.Contains($"final checkpoint {final}", output);
        Assert.DoesNotContain("   at ", output); // a message, not a stack trace
        Assert.DoesNotContain("Unhandled exception", output);
        using var loaded = Checkpoint.Load(final);
        Assert.Equal(5, loaded.Step);
    }

    [Fact]
    public void A_checkpoint_the_disk_refuses_leaves_the_previous_one_intact_and_says_so()
    {
        string runs = Path.Combine(_folder, "runs");
        string[] tiny = ["--plain", "--set", "data.name=synthetic-shapes", "--set", "data.syntheticTrain=64", "--set", "data.syntheticTest=16",
            "--set", "model.width=0.125", "--set", "model.projectionHidden=16", "--set", "model.projectionDim=8", "--set", "batchSize=16",
            "--set", "threads=1", "--set", "knnEveryEpochs=0", "--set", "checkpointEverySteps=2", "--set", $"runsFolder={runs}", "--set", "runName=r"];
        var (code, output) = Simclr("unlimited", ["pretrain", .. tiny, "--set", "epochs=2"]);
        Assert.True(code == 0, output);
        string run = Path.Combine(runs, "r");
        string previous = Path.Combine(run, "checkpoints", "step-00000008.safetensors");
        byte[] hash = SHA256.HashData(File.ReadAllBytes(previous));
        Assert.True(new FileInfo(previous).Length > 1000 * 1024); // bigger than the limit below

        (code, output) = Simclr("1000", "pretrain", "--plain", "--resume", run, "--set", "epochs=4");
        Assert.Equal(5, code);
        Assert.Contains("warning: could not write checkpoint", output); // periodic ones: training went on
        Assert.Contains("training goes on and tries again at step 12", output);
        Assert.Contains($"simclr: could not write checkpoint {Path.Combine(run, "checkpoints", "step-00000016.safetensors")}", output); // the final one: the run says so
        Assert.Contains($"the previous checkpoint is intact: {previous}", output);
        Assert.DoesNotContain("   at ", output); // a message, not a stack trace
        Assert.Equal(hash, SHA256.HashData(File.ReadAllBytes(previous)));
        Assert.Equal(3, Directory.GetFiles(Path.Combine(run, "checkpoints")).Length); // no partial or temporary file left
        using var loaded = Checkpoint.Load(previous);
        Assert.Equal(8, loaded.Step);
    }
}
