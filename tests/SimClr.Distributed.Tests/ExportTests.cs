using System.Diagnostics;
using SimClr.Core.Models;

namespace SimClr.Distributed.Tests;

/// <summary>What `simclr export` prints: PyTorch lines that load the backbone it wrote.</summary>
public sealed class ExportTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-export-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// `simclr export` of a narrowed backbone (width 0.125: stages 8/16/32/64) prints PyTorch lines that
    /// build that shape; they said Conv2d(3, 64, ...) and torchvision's full-width resnet18 whatever the width.
    /// </summary>
    [Fact]
    public void Export_prints_pytorch_lines_with_the_checkpoints_own_widths()
    {
        string runs = Path.Combine(_folder, "runs");
        var (code, output) = SimclrProcess.Run("pretrain", "--plain", "--set", "data.name=synthetic-shapes", "--set", "data.syntheticTrain=32", "--set", "data.syntheticTest=16",
            "--set", "model.width=0.125", "--set", "model.projectionHidden=16", "--set", "model.projectionDim=8", "--set", "batchSize=16", "--set", "epochs=1",
            "--set", "threads=1", "--set", "knnEveryEpochs=0", "--set", $"runsFolder={runs}", "--set", "runName=r");
        Assert.True(code == 0, output);
        string checkpoint = Directory.GetFiles(Path.Combine(runs, "r", "checkpoints")).Order().Last();
        string backbone = Path.Combine(_folder, "backbone.safetensors");
        (code, output) = SimclrProcess.Run("export", "--checkpoint", checkpoint, "--out", backbone);
        Assert.True(code == 0, output);
        Assert.Contains("m.conv1 = torch.nn.Conv2d(3, 8, 3, 1, 1, bias=False); m.bn1 = torch.nn.BatchNorm2d(8)", output, StringComparison.Ordinal);
        Assert.Contains("m.inplanes = 8;", output, StringComparison.Ordinal);
        Assert.Contains("m.layer1 = m._make_layer(BasicBlock, 8, 2); m.layer2 = m._make_layer(BasicBlock, 16, 2, stride=2)", output, StringComparison.Ordinal);
        Assert.Contains("m.layer3 = m._make_layer(BasicBlock, 32, 2, stride=2); m.layer4 = m._make_layer(BasicBlock, 64, 2, stride=2)", output, StringComparison.Ordinal);
        Assert.Contains($"m.load_state_dict(safetensors.torch.load_file('{backbone}'), strict=False)", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Conv2d(3, 64", output, StringComparison.Ordinal);
        Assert.DoesNotContain("resnet18()", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_keeps_torchvisions_resnet18_line_for_a_full_width_rgb_backbone()
    {
        string Snippet(ResNetOptions options) => string.Join('\n', SimClr.Cli.Commands.ExportCommand.PyTorchSnippet("b.safetensors", options));
        Assert.Contains("m = torchvision.models.resnet18(); m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity()", Snippet(new ResNetOptions()), StringComparison.Ordinal);
        Assert.Contains("Conv2d(1, 64, 3, 1, 1, bias=False)", Snippet(new ResNetOptions(InputChannels: 1)), StringComparison.Ordinal);
    }

    /// <summary>A full-width RGB resnet50 with the ImageNet stem is torchvision's own network; narrowed, it is built
    /// from Bottlenecks with the ImageNet stem's conv1 and max-pool kept.</summary>
    [Fact]
    public void Export_lines_follow_the_arch_and_the_stem()
    {
        string Snippet(ResNetOptions options) => string.Join('\n', SimClr.Cli.Commands.ExportCommand.PyTorchSnippet("b.safetensors", options));
        string full = Snippet(new ResNetOptions(Arch: ResNetArch.Resnet50, Stem: ResNetStem.Imagenet));
        Assert.Contains("m = torchvision.models.resnet50()\n", full, StringComparison.Ordinal);
        Assert.DoesNotContain("conv1", full, StringComparison.Ordinal);
        string narrow = Snippet(new ResNetOptions(0.25, 3, ResNetArch.Resnet50, ResNetStem.Imagenet));
        Assert.Contains("m = ResNet(Bottleneck, [3, 4, 6, 3]); m.inplanes = 16; m.fc = torch.nn.Identity()\n", narrow, StringComparison.Ordinal);
        Assert.Contains("m.conv1 = torch.nn.Conv2d(3, 16, 7, 2, 3, bias=False)", narrow, StringComparison.Ordinal);
        Assert.Contains("m.layer4 = m._make_layer(Bottleneck, 128, 3, stride=2)", narrow, StringComparison.Ordinal);
        Assert.Contains("features of 512 dimensions", narrow, StringComparison.Ordinal);
        Assert.Contains("m = ResNet(BasicBlock, [3, 4, 6, 3]);", Snippet(new ResNetOptions(0.5, 3, ResNetArch.Resnet34)), StringComparison.Ordinal);
    }
}
