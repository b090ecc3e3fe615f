using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Stages;
using SimClr.Core.Tests.Stages;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Models;

/// <summary>model.arch and model.stem: torchvision's resnet34 and resnet50 (names, sizes) and its ImageNet stem.</summary>
public sealed class ResNetArchTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-arch-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    /// <summary>torchvision 0.14: sum of parameter sizes and number of state_dict keys, fc left out
    /// (python3 -c "m = torchvision.models.resnet50(); ..."), with torchvision's own (ImageNet) stem.</summary>
    [Theory]
    [InlineData(ResNetArch.Resnet18, 11_176_512, 120)]
    [InlineData(ResNetArch.Resnet34, 21_284_672, 216)]
    [InlineData(ResNetArch.Resnet50, 23_508_032, 318)]
    public void Full_width_with_the_imagenet_stem_has_torchvisions_sizes(ResNetArch arch, long parameters, int keys)
    {
        using var net = new ResNet(new ResNetOptions(Arch: arch, Stem: ResNetStem.Imagenet));
        Assert.Equal(parameters, net.parameters().Sum(p => p.numel()));
        Assert.Equal(keys, net.state_dict().Count);
    }

    [Fact]
    public void Resnet50_has_torchvisions_bottleneck_names_and_2048_features()
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.125, Arch: ResNetArch.Resnet50, Stem: ResNetStem.Imagenet), classes: 10);
        var state = net.state_dict();
        foreach (string key in new[] { "layer1.0.conv3.weight", "layer1.0.bn3.running_var", "layer1.0.downsample.0.weight", "layer3.5.conv2.weight", "layer4.2.bn3.weight", "fc.weight" })
            Assert.True(state.ContainsKey(key), key);
        Assert.False(state.ContainsKey("layer1.1.downsample.0.weight"));
        Assert.Equal(new long[] { 8, 3, 7, 7 }, state["conv1.weight"].shape);
        Assert.Equal(new long[] { 256, 64, 1, 1 }, state["layer4.0.conv3.weight"].shape); // layer4: 512 x 0.125 = 64 planes, out 64 x 4
        Assert.Equal(256, net.Options.FeatureDim);
        Assert.Equal(2048, new ResNetOptions(Arch: ResNetArch.Resnet50).FeatureDim);
        Assert.Equal(new long[] { 10, 256 }, state["fc.weight"].shape);
    }

    [Fact]
    public void The_imagenet_stem_divides_the_image_by_4_before_layer1_and_its_stages_run_as_the_network()
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.25, Arch: ResNetArch.Resnet34, Stem: ResNetStem.Imagenet));
        net.eval();
        using var noGrad = no_grad();
        using var x = randn(2, 3, 64, 64);
        var stages = net.Stages();
        using var afterStem = stages[0].Forward(x);
        Assert.Equal(new long[] { 2, 16, 16, 16 }, afterStem.shape);
        Tensor y = x;
        foreach (var stage in stages) y = stage.Forward(y);
        using var features = net.Features(x);
        Assert.Equal(new long[] { 2, 128 }, features.shape);
        Assert.True(features.allclose(y, rtol: 1e-5, atol: 1e-6));
        Assert.Equal(1 + 3 + 4 + 6 + 3 + 1, stages.Count); // stem, 16 blocks, pool
    }

    [Fact]
    public void An_auto_stem_is_cifar_up_to_64_pixels_and_imagenet_above()
    {
        var config = new RunConfig();
        Assert.Equal(ResNetStem.Auto, config.Model.Stem);
        Assert.Equal(ResNetStem.Cifar, config.Backbone(3).Stem);
        Assert.Equal(ResNetStem.Cifar, (config with { Augment = config.Augment with { OutputSize = 64 } }).Backbone(3).Stem);
        Assert.Equal(ResNetStem.Imagenet, (config with { Augment = config.Augment with { OutputSize = 96 } }).Backbone(3).Stem);
        var pinned = RunConfigLoader.Load(null, ["model.stem=cifar", "augment.outputSize=224", "model.arch=resnet50"]);
        Assert.Equal(new ResNetOptions(1, 1, ResNetArch.Resnet50, ResNetStem.Cifar), pinned.Backbone(1));
        Assert.Contains("model.arch must be one of resnet18, resnet34, resnet50", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["model.arch=resnet101"])).Message);
    }

    /// <summary>A narrow resnet50 pre-trains on the CPU (its 2048-wide head input narrowed to 256), and a fine-tune
    /// starts from its backbone.</summary>
    [Fact]
    public async Task A_narrow_resnet50_pretrains_and_fine_tunes()
    {
        var model = new ModelOptions { Arch = ResNetArch.Resnet50, Width = 0.125, ProjectionHidden = 32, ProjectionDim = 8 };
        var pre = TinyRuns.Config(Stage.Pretrain, _runs, "pre50") with { Model = model, Epochs = 1, KnnEveryEpochs = 1 };
        var result = await StageRunner.RunAsync(pre, RunDirectory.Create(pre), SilentObserver.Instance);
        Assert.True(result.Completed);
        Assert.InRange(result.Metrics["knn_accuracy"], 0, 1);
        using (var checkpoint = SimClr.Core.Checkpoints.Checkpoint.Load(result.CheckpointPath!))
        {
            Assert.Equal(new long[] { 32, 256 }, checkpoint.Model["projector.0.weight"].shape);
            Assert.True(checkpoint.Model.ContainsKey("backbone.layer4.2.conv3.weight"));
        }
        var fine = TinyRuns.Config(Stage.Finetune, _runs, "fine50") with { Model = model, Epochs = 1, Pretrained = result.CheckpointPath };
        var tuned = await StageRunner.RunAsync(fine, RunDirectory.Create(fine), SilentObserver.Instance);
        Assert.InRange(tuned.Metrics["test_accuracy"], 0, 1);

        var wrong = TinyRuns.Config(Stage.Finetune, _runs, "fine18") with { Epochs = 1, Pretrained = result.CheckpointPath };
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => StageRunner.RunAsync(wrong, RunDirectory.Create(wrong), SilentObserver.Instance));
        Assert.Contains("model.arch", e.Message);
    }
}
