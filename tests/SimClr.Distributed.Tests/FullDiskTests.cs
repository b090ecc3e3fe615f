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
        var info = new ProcessStartInfo("bash", ["-c", $"trap '' XFSZ; ulimit -f {limitKb}; exec '{simclr}' {quoted}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["DOTNET_EnableWriteXorExecute"] = "0"; // the runtime's double-mapped code heap is a file too
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(3)));
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
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
