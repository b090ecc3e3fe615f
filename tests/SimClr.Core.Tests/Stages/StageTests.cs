using System.Text.Json;
using SimClr.Core.Augmentation;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Stages;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Stages;

public sealed class StageTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-runs-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    private static Dictionary<string, Tensor> Load(string checkpoint)
    {
        using var c = Checkpoint.Load(checkpoint);
        return c.Model.ToDictionary(kv => kv.Key, kv => kv.Value.clone());
    }

    private static void AssertSameParameters(Dictionary<string, Tensor> a, Dictionary<string, Tensor> b, double tolerance)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, tensor) in a)
        {
            if (!tensor.is_floating_point()) { Assert.True(tensor.eq(b[name]).all().item<bool>(), name); continue; }
            double diff = tensor.sub(b[name]).abs().max().item<float>();
            Assert.True(diff <= tolerance * Math.Max(1, tensor.abs().max().item<float>()), $"{name} differs by {diff}");
        }
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public async Task Pretraining_writes_config_metrics_events_and_a_checkpoint_and_reports_knn(string device)
    {
        TestDevices.Get(device);
        var config = TinyRuns.Config(Stage.Pretrain, _runs, "pre") with { Device = device };
        var run = RunDirectory.Create(config);
        var result = await StageRunner.RunAsync(config, run, SilentObserver.Instance);
        Assert.True(result.Completed);
        Assert.True(File.Exists(run.ConfigFile));
        Assert.Equal(config, RunConfigLoader.Load(run.ConfigFile));
        var lines = File.ReadAllLines(run.MetricsFile).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(12, lines.Count(l => l.GetProperty("kind").GetString() == "step")); // 3 epochs x 4 steps
        Assert.Equal(3, lines.Count(l => l.GetProperty("kind").GetString() == "epoch"));
        Assert.InRange(result.Metrics["knn_accuracy"], 0, 1);
        Assert.NotEmpty(Directory.GetFiles(run.EventsFolder));
        Assert.Equal(run.CheckpointPath(12), result.CheckpointPath);
        Assert.Equal(3, Directory.GetFiles(run.CheckpointsFolder).Length); // steps 5, 10, 12 kept (keep 3)
    }

    /// <summary>Equal to 1e-6 on the CPU; on cuda to <see cref="TestDevices.Tolerance"/> (cuDNN's backward sums in no fixed order, over 12 steps).</summary>
    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public async Task Resuming_from_the_middle_gives_the_parameters_of_an_uninterrupted_run(string device)
    {
        TestDevices.Get(device);
        double tolerance = TestDevices.Exact(device) ? 1e-6 : TestDevices.Tolerance;
        var straightConfig = TinyRuns.Config(Stage.Pretrain, _runs, "straight") with { KnnEveryEpochs = 0, CheckpointEverySteps = 0, Device = device };
        var straight = await StageRunner.RunAsync(straightConfig, RunDirectory.Create(straightConfig), SilentObserver.Instance);

        var pausedConfig = straightConfig with { RunName = "paused" };
        var pausedRun = RunDirectory.Create(pausedConfig);
        var half = await StageRunner.RunAsync(pausedConfig, pausedRun, SilentObserver.Instance, stopAfterStep: 6);
        Assert.False(half.Completed);
        Assert.Equal(pausedRun.CheckpointPath(6), half.CheckpointPath);
        var resumed = await StageRunner.RunAsync(pausedConfig, RunDirectory.Open(pausedRun.Path), SilentObserver.Instance, resumeCheckpoint: half.CheckpointPath);
        Assert.True(resumed.Completed);

        using var scope = NewDisposeScope();
        AssertSameParameters(Load(straight.CheckpointPath!), Load(resumed.CheckpointPath!), tolerance);
        var momentumA = Checkpoint.Load(straight.CheckpointPath!);
        var momentumB = Checkpoint.Load(resumed.CheckpointPath!);
        AssertSameParameters(momentumA.Optimizer, momentumB.Optimizer, tolerance);
        momentumA.Dispose();
        momentumB.Dispose();
    }

    [Fact]
    public async Task Linear_eval_leaves_the_backbone_unchanged_and_fine_tuning_changes_it()
    {
        var preConfig = TinyRuns.Config(Stage.Pretrain, _runs, "pre") with { Epochs = 1, KnnEveryEpochs = 0 };
        var pre = await StageRunner.RunAsync(preConfig, RunDirectory.Create(preConfig), SilentObserver.Instance);
        using var scope = NewDisposeScope();
        var before = BackboneWeights.Load(pre.CheckpointPath!);

        var linearConfig = TinyRuns.Config(Stage.LinearEval, _runs, "linear") with { Pretrained = pre.CheckpointPath, Epochs = 5 };
        var linear = await StageRunner.RunAsync(linearConfig, RunDirectory.Create(linearConfig), SilentObserver.Instance);
        Assert.InRange(linear.Metrics["test_accuracy"], 0, 1);
        AssertSameParameters(before, BackboneWeights.Load(pre.CheckpointPath!), 0); // the file is untouched ...

        // ... and so is an in-memory backbone run through the protocol's feature extraction (eval-mode BN, no grad)
        using var backbone = new ResNet(new ResNetOptions(0.125));
        BackboneWeights.LoadInto(backbone, before, "pre");
        var snapshot = backbone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using (var data = SimClr.Core.Data.SyntheticShapes.Generate(32, 8, 1))
            Evaluation.FeatureExtractor.Extract(backbone, data.Train, CPU).Dispose();
        AssertSameParameters(snapshot, backbone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value), 0);

        var fineConfig = TinyRuns.Config(Stage.Finetune, _runs, "fine") with { Pretrained = pre.CheckpointPath, Epochs = 1 };
        var fine = await StageRunner.RunAsync(fineConfig, RunDirectory.Create(fineConfig), SilentObserver.Instance);
        var after = BackboneWeights.Load(fine.CheckpointPath!);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.Contains(before.Keys, k => before[k].is_floating_point() && !before[k].allclose(after[k]));
        Assert.True(fine.Metrics.ContainsKey("test_accuracy"));
    }

    [Fact]
    public async Task Supervised_starts_from_scratch_and_reports_train_and_test_accuracy()
    {
        var config = TinyRuns.Config(Stage.Supervised, _runs, "sup") with { Epochs = 2 };
        var result = await StageRunner.RunAsync(config, RunDirectory.Create(config), SilentObserver.Instance);
        Assert.InRange(result.Metrics["train_accuracy"], 0, 1);
        Assert.InRange(result.Metrics["test_accuracy"], 0, 1);
    }

    /// <summary>linearEvalAugment trains on features of fresh crops and flips: with crops and flips switched off those are
    /// the plain images' features, and the result is the cached probe's; with them on, training sees other features.</summary>
    [Fact]
    public async Task The_augmented_linear_eval_is_the_cached_probe_when_the_views_are_the_plain_images()
    {
        var pre = TinyRuns.Config(Stage.Pretrain, _runs, "pre-aug") with { Epochs = 1, KnnEveryEpochs = 0 };
        var checkpoint = (await StageRunner.RunAsync(pre, RunDirectory.Create(pre), SilentObserver.Instance)).CheckpointPath;
        async Task<List<double>> TrainAccuracies(string name, bool augment, bool crops)
        {
            var config = TinyRuns.Config(Stage.LinearEval, _runs, name) with
            {
                Pretrained = checkpoint,
                Epochs = 4,
                LinearEvalAugment = augment,
                Augment = crops ? new AugmentationOptions() : new AugmentationOptions { Crop = false, FlipProbability = 0 },
            };
            var run = RunDirectory.Create(config);
            await StageRunner.RunAsync(config, run, SilentObserver.Instance);
            return File.ReadAllLines(run.MetricsFile).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("train_accuracy").GetDouble()).ToList();
        }
        var cached = await TrainAccuracies("cached", augment: false, crops: true);
        Assert.Equal(cached, await TrainAccuracies("plain-views", augment: true, crops: false));
        Assert.NotEqual(cached, await TrainAccuracies("augmented", augment: true, crops: true));
    }

    [Fact]
    public async Task Test_accuracy_is_measured_every_testEveryEpochs_epochs_and_after_the_last()
    {
        var config = TinyRuns.Config(Stage.Supervised, _runs, "every") with { Epochs = 5, TestEveryEpochs = 2 };
        var run = RunDirectory.Create(config);
        var result = await StageRunner.RunAsync(config, run, SilentObserver.Instance);
        var epochs = File.ReadAllLines(run.MetricsFile).Select(l => JsonDocument.Parse(l).RootElement).Where(l => l.GetProperty("kind").GetString() == "epoch").ToList();
        Assert.Equal(5, epochs.Count);
        Assert.All(epochs, e => Assert.True(e.TryGetProperty("train_accuracy", out _)));
        Assert.Equal([2, 4, 5], epochs.Where(e => e.TryGetProperty("test_accuracy", out _)).Select(e => e.GetProperty("epoch").GetInt32()));
        Assert.InRange(result.Metrics["test_accuracy"], 0, 1);
        Assert.Contains("testEveryEpochs must be >= 1", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["testEveryEpochs=0"])).Message);
    }

    /// <summary>kNN evaluation takes its bank from the labelled subset, trains nothing, and needs a backbone to evaluate.</summary>
    [Fact]
    public async Task Knn_eval_votes_among_the_labelled_subset_only()
    {
        var pre = TinyRuns.Config(Stage.Pretrain, _runs, "pre-knn") with { Epochs = 1, KnnEveryEpochs = 0 };
        var checkpoint = (await StageRunner.RunAsync(pre, RunDirectory.Create(pre), SilentObserver.Instance)).CheckpointPath;
        double Bank(RunDirectory run) => File.ReadAllLines(run.MetricsFile).Select(l => JsonDocument.Parse(l).RootElement).Single().GetProperty("bank").GetDouble();
        var all = TinyRuns.Config(Stage.KnnEval, _runs, "knn-all") with { Pretrained = checkpoint };
        var allRun = RunDirectory.Create(all);
        var full = await StageRunner.RunAsync(all, allRun, SilentObserver.Instance);
        var half = TinyRuns.Config(Stage.KnnEval, _runs, "knn-half") with { Pretrained = checkpoint, LabelFraction = 0.5 };
        var halfRun = RunDirectory.Create(half);
        var subset = await StageRunner.RunAsync(half, halfRun, SilentObserver.Instance);
        Assert.Equal(64, Bank(allRun));
        Assert.InRange(Bank(halfRun), 28, 36); // half of each class, rounded
        Assert.InRange(full.Metrics["test_accuracy"], 0, 1);
        Assert.InRange(subset.Metrics["test_accuracy"], 0, 1);
        Assert.Null(subset.CheckpointPath);
        Assert.Contains("knn-eval needs pretrained", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["stage=knn-eval"])).Message);
    }

    [Fact]
    public void Starting_a_new_run_over_one_with_checkpoints_is_refused()
    {
        var config = TinyRuns.Config(Stage.Pretrain, _runs, "taken");
        var run = RunDirectory.Create(config);
        Directory.CreateDirectory(run.CheckpointsFolder);
        File.WriteAllText(run.CheckpointPath(5), "x");
        Assert.Contains("--resume", Assert.Throws<ConfigException>(() => RunDirectory.Create(config)).Message);
    }

    [Fact]
    public async Task A_batch_larger_than_the_labelled_images_and_a_missing_gpu_are_config_errors_not_crashes()
    {
        var config = TinyRuns.Config(Stage.Supervised, _runs, "small") with { LabelFraction = 0.1 };
        var e = await Assert.ThrowsAsync<ConfigException>(() => StageRunner.RunAsync(config, RunDirectory.Create(config), SilentObserver.Instance));
        Assert.Contains("batchSize 16 is larger than the 10 training images this run has at labelFraction 0.1", e.Message);

        if (!cuda.is_available()) // on a GPU box the device is fine and this part has nothing to check
        {
            var gpu = TinyRuns.Config(Stage.Pretrain, _runs, "gpu") with { Device = "cuda" };
            e = await Assert.ThrowsAsync<ConfigException>(() => StageRunner.RunAsync(gpu, RunDirectory.Create(gpu), SilentObserver.Instance));
            Assert.Contains("CUDA is not available", e.Message);
        }
        Assert.Contains("not a device name", Assert.Throws<ConfigException>(() => StageRunner.CheckDevice("gpu0")).Message);
    }
}
