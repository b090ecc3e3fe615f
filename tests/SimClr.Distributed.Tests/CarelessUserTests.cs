using System.Diagnostics;
using SimClr.Core.Checkpoints;
using static TorchSharp.torch;

namespace SimClr.Distributed.Tests;

/// <summary>
/// The built `simclr` as a careless user runs it (issue 14): broken configs, absurd values, a data file that is a
/// device, checkpoints of another shape or cut short. Every refusal must be a message with the documented exit code,
/// never a stack trace, and must leave no run directory behind.
/// </summary>
public sealed class CarelessUserTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-careless-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Runs => Path.Combine(_folder, "runs");

    /// <summary>A run of seconds: 64 images, batch 16 (4 steps an epoch), an 8-channel net.</summary>
    private string[] Tiny => ["--plain", "--set", "data.name=synthetic-shapes", "--set", "data.syntheticTrain=64", "--set", "data.syntheticTest=16",
        "--set", "model.width=0.125", "--set", "model.projectionHidden=16", "--set", "model.projectionDim=8", "--set", "batchSize=16",
        "--set", "threads=1", "--set", "knnEveryEpochs=0", "--set", "checkpointEverySteps=2", "--set", $"runsFolder={Runs}", "--set", "runName=r"];

    private string File(string name, string text)
    {
        string path = Path.Combine(_folder, name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    private static void NoStackTrace(string output)
    {
        Assert.DoesNotContain("   at ", output);
        Assert.DoesNotContain("Exception", output);
    }

    [Theory]
    [InlineData("duplicate-key", "key 'optimizer.momentum' is given more than once; keep one")]
    [InlineData("root-array", "a config is a JSON object { \"key\": value, ... } at the top level, not an array")]
    [InlineData("root-string", "at the top level, not a string")]
    [InlineData("width-1e308", "model.width must be in (0, 8] (got 1E+308")]
    [InlineData("synthetic-2e9", "syntheticTrain and syntheticTest must be in [1, 1000000] (got 2000000000")]
    [InlineData("enum", "optimizer.kind must be one of sgd, lars (got \"adam\")")]
    [InlineData("cifar-dev-zero", "larger than a CIFAR-10 batch file can be (30730000 bytes")]
    public void Bad_input_is_one_message_with_exit_code_2_and_leaves_no_run_directory(string what, string expected)
    {
        string[] args = what switch
        {
            "duplicate-key" => ["--config", File("c.json", """{ "optimizer": { "momentum": 0.9, "kind": "sgd", "momentum": 0.8 } }""")],
            "root-array" => ["--config", File("c.json", "[1, 2]")],
            "root-string" => ["--config", File("c.json", "\"configs/quickstart-pretrain.json\"")],
            "width-1e308" => ["--set", "model.width=1e308"],
            "synthetic-2e9" => ["--set", "data.syntheticTrain=2000000000"],
            "enum" => ["--set", "optimizer.kind=adam"],
            "cifar-dev-zero" => ["--set", "data.name=cifar10", "--set", $"data.root={DevZeroCifar()}", "--set", "data.download=false"],
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };
        var (code, output) = SimclrProcess.Run(["pretrain", .. Tiny, .. args]);
        Assert.True(code == 2, output);
        Assert.Contains(expected, output);
        NoStackTrace(output);
        Assert.False(Directory.Exists(Path.Combine(Runs, "r")), $"a run directory was left behind: {output}");
    }

    [Fact]
    public void A_checkpoint_of_another_shape_is_refused_naming_the_tensor_and_both_shapes()
    {
        var (code, output) = SimclrProcess.Run(["pretrain", .. Tiny, "--set", "epochs=1"]);
        Assert.True(code == 0, output);
        string run = Path.Combine(Runs, "r");

        // another width: every conv differs (was a native stack trace)
        (code, output) = SimclrProcess.Run("pretrain", "--plain", "--resume", run, "--set", "model.width=0.25", "--set", "epochs=2");
        Assert.True(code == 2, output);
        Assert.Contains("does not fit this model", output);
        Assert.Contains("model.backbone.conv1.weight has shape [8, 3, 3, 3], the model [16, 3, 3, 3]", output);
        NoStackTrace(output);

        // a shape that broadcasts: bn1.weight [1] for [8] (was accepted silently, and every later checkpoint carried it)
        var before = Directory.GetFiles(Path.Combine(run, "checkpoints")).Order(StringComparer.Ordinal).ToList();
        string last = before[^1];
        var (tensors, metadata) = SafeTensors.Read(last);
        tensors["model.backbone.bn1.weight"].Dispose();
        tensors["model.backbone.bn1.weight"] = ones(1);
        using (var stream = System.IO.File.Create(last)) SafeTensors.Write(stream, tensors.Select(kv => (kv.Key, kv.Value)), metadata);
        foreach (var t in tensors.Values) t.Dispose();
        (code, output) = SimclrProcess.Run("pretrain", "--plain", "--resume", run, "--set", "epochs=2");
        Assert.True(code == 2, output);
        Assert.Contains("model.backbone.bn1.weight has shape [1], the model [8]", output);
        NoStackTrace(output);
        Assert.Equal(before, Directory.GetFiles(Path.Combine(run, "checkpoints")).Order(StringComparer.Ordinal)); // nothing written from the refused state
    }

    [Fact]
    public void A_damaged_newest_checkpoint_falls_back_to_the_older_intact_one_and_orphaned_temporaries_are_removed()
    {
        var (code, output) = SimclrProcess.Run(["pretrain", .. Tiny, "--set", "epochs=2"]);
        Assert.True(code == 0, output);
        string checkpoints = Path.Combine(Runs, "r", "checkpoints");
        string newest = Path.Combine(checkpoints, "step-00000008.safetensors");
        using (var stream = new FileStream(newest, FileMode.Open)) stream.SetLength(stream.Length / 2);
        // what a write killed mid-way leaves (AtomicFile's name, a process that no longer exists)
        string orphan = Path.Combine(checkpoints, ".step-00000010.safetensors.2147483600.0123456789abcdef0123456789abcdef.tmp");
        System.IO.File.WriteAllBytes(orphan, new byte[1000]);

        (code, output) = SimclrProcess.Run("pretrain", "--plain", "--resume", Path.Combine(Runs, "r"), "--set", "epochs=3");
        Assert.True(code == 0, output);
        Assert.Contains("step-00000008.safetensors: ", output);
        Assert.Contains($"resuming from the older intact {Path.Combine(checkpoints, "step-00000006.safetensors")} instead", output);
        Assert.Contains("resuming pretrain at step 6 of 12", output);
        Assert.Contains("removed 1 temporary file(s) that an interrupted write left behind", output);
        Assert.False(System.IO.File.Exists(orphan));
        NoStackTrace(output);
        using var last = Checkpoint.Load(Path.Combine(checkpoints, "step-00000012.safetensors"));
        Assert.Equal(12, last.Step);
    }

    [Fact]
    public void A_run_stopped_before_its_first_checkpoint_does_not_claim_one()
    {
        var (code, output) = SimclrProcess.Run(["coordinator", "--workers", "127.0.0.1:9", "--health-timeout", "1", .. Tiny, "--set", "epochs=1"]);
        Assert.True(code == 4, output);
        Assert.DoesNotContain("checkpoint is intact", output);
        Assert.Contains("the run stopped before its first checkpoint, so there is nothing to resume", output);
        NoStackTrace(output);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void Launch_refuses_a_worker_count_below_one(string workers)
    {
        var (code, output) = SimclrProcess.Run(["launch", "--workers", workers, "--devices", "cpu", .. Tiny.Where(a => a != "--plain"), "--set", "epochs=1"]);
        Assert.True(code == 2, output);
        Assert.Contains($"--workers must be >= 1 (got {workers}); leave it out for the default: one per device in --devices, 2 for --devices cpu", output);
        Assert.False(Directory.Exists(Path.Combine(Runs, "r")), output);
    }

    [Fact]
    public void Nccl_on_workers_that_cannot_load_it_stops_before_the_first_step_saying_what_to_install_or_set()
    {
        var info = new ProcessStartInfo(SimclrProcess.Executable,
            ["launch", "--workers", "2", "--devices", "cpu", .. Tiny.Where(a => a != "--plain"), "--set", "epochs=1", "--set", "reduction.method=nccl"]);
        info.Environment[SimClr.Core.Runtime.Nccl.LibraryVariable] = "/nowhere/libnccl.so.2"; // the workers inherit it: NCCL is missing, whatever this machine has
        var (code, output) = SimclrProcess.Run(info);
        Assert.True(code == 2, output);
        Assert.Contains("reduction.method is nccl, but worker 0", output);
        Assert.Contains("cannot use NCCL: NCCL: /nowhere/libnccl.so.2 does not exist (given by SIMCLR_NCCL_LIBRARY)", output);
        Assert.Contains("apt-get install libnccl2", output);
        Assert.DoesNotContain("step 1", output);
        Assert.False(Directory.Exists(Path.Combine(Runs, "r")), output);
        NoStackTrace(output);
    }

    [Fact]
    public void Pretrain_without_a_config_says_it_uses_the_built_in_defaults()
    {
        var (code, output) = SimclrProcess.Run(["pretrain", .. Tiny, "--set", "epochs=1"]);
        Assert.True(code == 0, output);
        Assert.Contains("simclr: no --config given: using the built-in defaults (the seed's full recipe) with your --set values: stage pretrain, "
            + "data synthetic-shapes, model.width 0.125, batchSize 16, epochs 1, device cpu.", output);
        Assert.Contains("--config configs/quickstart-pretrain.json", output);
    }

    /// <summary>A CIFAR-10 folder whose every file is a link to /dev/zero (reports size 0, never ends).</summary>
    private string DevZeroCifar()
    {
        string root = Path.Combine(_folder, "cifar");
        string folder = Directory.CreateDirectory(Path.Combine(root, "cifar-10-batches-bin")).FullName;
        foreach (string name in new[] { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin" })
            System.IO.File.CreateSymbolicLink(Path.Combine(folder, name), "/dev/zero");
        return root;
    }
}
