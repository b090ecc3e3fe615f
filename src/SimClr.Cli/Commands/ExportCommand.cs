using System.CommandLine;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Models;

namespace SimClr.Cli.Commands;

/// <summary>simclr export: the backbone of a checkpoint as safetensors with torchvision's resnet18 names.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a pretrain/finetune/supervised checkpoint (.safetensors)", Required = true };
        var output = CommonOptions.Out("file to write", "backbone.safetensors");
        var command = new Command("export", "Write a checkpoint's backbone for PyTorch: torchvision resnet18 names (CIFAR stem, no fc), safetensors.")
        {
            checkpoint, output,
        };
        command.SetAction(r => ExitCodes.Run("simclr export", () => Run(r.GetValue(checkpoint)!, r.GetValue(output)!)));
        return command;
    }

    /// <summary>
    /// PyTorch lines that build a network of the backbone's own shape (input channels, then the four stages' widths, 64/128/256/512
    /// at full width) and load the file into it: torchvision's resnet18 at full width with 3 channels, else torchvision's
    /// ResNet with the stages narrowed as in the file (a full-width resnet18 would refuse every narrowed tensor).
    /// </summary>
    public static IEnumerable<string> PyTorchSnippet(string file, int inputChannels, IReadOnlyList<int> stages)
    {
        string load = $"m.load_state_dict(safetensors.torch.load_file('{file}'), strict=False)";
        if (inputChannels == 3 && stages.SequenceEqual(ResNetOptions.StageWidths))
        {
            yield return "PyTorch: m = torchvision.models.resnet18(); m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity();";
            yield return $"         {load}  # only fc stays untrained";
            yield break;
        }
        yield return $"PyTorch (this backbone's widths {string.Join('/', stages)}, {inputChannels} input channel{(inputChannels == 1 ? "" : "s")}):";
        yield return "         from torchvision.models.resnet import ResNet, BasicBlock";
        yield return $"         m = ResNet(BasicBlock, [2, 2, 2, 2]); m.inplanes = {stages[0]}; m.maxpool = torch.nn.Identity(); m.fc = torch.nn.Identity()";
        yield return $"         m.conv1 = torch.nn.Conv2d({inputChannels}, {stages[0]}, 3, 1, 1, bias=False); m.bn1 = torch.nn.BatchNorm2d({stages[0]})";
        yield return $"         m.layer1 = m._make_layer(BasicBlock, {stages[0]}, 2); m.layer2 = m._make_layer(BasicBlock, {stages[1]}, 2, stride=2)";
        yield return $"         m.layer3 = m._make_layer(BasicBlock, {stages[2]}, 2, stride=2); m.layer4 = m._make_layer(BasicBlock, {stages[3]}, 2, stride=2)";
        yield return $"         {load}  # features of {stages[3]} dimensions; add your own fc";
    }

    private static int Run(string checkpointPath, string output)
    {
        try
        {
            using var checkpoint = Checkpoint.Load(checkpointPath);
            var config = System.Text.Json.JsonSerializer.Deserialize<RunConfig>(checkpoint.ConfigJson, RunConfigLoader.Json)!;
            var weights = BackboneWeights.Load(checkpointPath);
            int channels = (int)weights["conv1.weight"].shape[1];
            using var backbone = new ResNet18(new ResNetOptions(config.Model.Width, channels));
            BackboneWeights.LoadInto(backbone, weights, checkpointPath);
            foreach (var t in weights.Values) t.Dispose();
            BackboneWeights.Export(backbone, output, new Dictionary<string, string> { ["source"] = Path.GetFullPath(checkpointPath) });
            var options = new ResNetOptions(config.Model.Width, channels);
            Console.WriteLine($"wrote {output}: ResNet-18 backbone (width {config.Model.Width}, {channels} input channels), torchvision names.");
            foreach (string line in PyTorchSnippet(output, channels, [.. Enumerable.Range(0, 4).Select(options.Channels)])) Console.WriteLine(line);
            Console.WriteLine($"Check in PyTorch (any width): /usr/bin/python3 tests/interop/torchvision_load.py {output}");
            return ExitCodes.Success;
        }
        catch (KeyNotFoundException e)
        {
            throw new InvalidDataException(e.Message, e); // a tensor or key the file lacks: not a checkpoint this can export (exit code 2)
        }
    }
}
