using System.Diagnostics;

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
        string text = string.Join('\n', SimClr.Cli.Commands.ExportCommand.PyTorchSnippet("b.safetensors", 3, [64, 128, 256, 512]));
        Assert.Contains("m = torchvision.models.resnet18(); m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)", text, StringComparison.Ordinal);
        Assert.Contains("Conv2d(1, 64, 3, 1, 1, bias=False)", string.Join('\n', SimClr.Cli.Commands.ExportCommand.PyTorchSnippet("b.safetensors", 1, [64, 128, 256, 512])), StringComparison.Ordinal);
    }
}
