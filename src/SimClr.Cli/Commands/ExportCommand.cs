using System.CommandLine;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Models;

namespace SimClr.Cli.Commands;

/// <summary>simclr export: the backbone of a checkpoint as safetensors with torchvision's names.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a pretrain/finetune/supervised checkpoint (.safetensors)", Required = true };
        var output = CommonOptions.Out("file to write", "backbone.safetensors");
        var command = new Command("export", "Write a checkpoint's backbone for PyTorch: torchvision resnet18/34/50 names (no fc), safetensors.")
        {
            checkpoint, output,
        };
        command.SetAction(r => ExitCodes.Run("simclr export", () => Run(r.GetValue(checkpoint)!, r.GetValue(output)!)));
        return command;
    }

    /// <summary>
    /// PyTorch lines that build a network of the backbone's own shape (arch, stem, input channels, the four stages'
    /// widths) and load the file into it: torchvision's own resnet18/34/50 at full width with 3 channels (the CIFAR stem
    /// swapped in where the file has it), else torchvision's ResNet with the stages narrowed as in the file (a full-width
    /// network would refuse every narrowed tensor).
    /// </summary>
    public static IEnumerable<string> PyTorchSnippet(string file, ResNetOptions options)
    {
        string load = $"m.load_state_dict(safetensors.torch.load_file('{file}'), strict=False)";
        int[] stages = [.. Enumerable.Range(0, 4).Select(options.Channels)];
        bool cifar = options.Stem == ResNetStem.Cifar;
        string conv1 = $"m.conv1 = torch.nn.Conv2d({options.InputChannels}, {stages[0]}, {(cifar ? "3, 1, 1" : "7, 2, 3")}, bias=False)";
        const string noMaxPool = "m.maxpool = torch.nn.Identity()";
        if (options.InputChannels == 3 && stages.SequenceEqual(ResNetOptions.StageWidths))
        {
            yield return $"PyTorch: m = torchvision.models.{options.ArchName}()" + (cifar ? $"; {conv1}; {noMaxPool}" : "");
            yield return $"         {load}  # only fc stays untrained";
            yield break;
        }
        string block = options.UsesBottlenecks ? "Bottleneck" : "BasicBlock";
        int[] n = options.Blocks;
        yield return $"PyTorch ({options.ArchName}, {options.StemName} stem, this backbone's widths {string.Join('/', stages)}, {options.InputChannels} input channel{(options.InputChannels == 1 ? "" : "s")}):";
        yield return $"         from torchvision.models.resnet import ResNet, {block}";
        yield return $"         m = ResNet({block}, [{string.Join(", ", n)}]); m.inplanes = {stages[0]}; m.fc = torch.nn.Identity()" + (cifar ? $"; {noMaxPool}" : "");
        yield return $"         {conv1}; m.bn1 = torch.nn.BatchNorm2d({stages[0]})";
        yield return $"         m.layer1 = m._make_layer({block}, {stages[0]}, {n[0]}); m.layer2 = m._make_layer({block}, {stages[1]}, {n[1]}, stride=2)";
        yield return $"         m.layer3 = m._make_layer({block}, {stages[2]}, {n[2]}, stride=2); m.layer4 = m._make_layer({block}, {stages[3]}, {n[3]}, stride=2)";
        yield return $"         {load}  # features of {options.FeatureDim} dimensions; add your own fc";
    }

    private static int Run(string checkpointPath, string output)
    {
        try
        {
            using var checkpoint = Checkpoint.Load(checkpointPath);
            var config = System.Text.Json.JsonSerializer.Deserialize<RunConfig>(checkpoint.ConfigJson, RunConfigLoader.Json)!;
            var weights = BackboneWeights.Load(checkpointPath);
            int channels = (int)weights["conv1.weight"].shape[1];
            var options = config.Backbone(channels);
            using var backbone = new ResNet(options);
            BackboneWeights.LoadInto(backbone, weights, checkpointPath);
            foreach (var t in weights.Values) t.Dispose();
            BackboneWeights.Export(backbone, output, new Dictionary<string, string> { ["source"] = Path.GetFullPath(checkpointPath) });
            Console.WriteLine($"wrote {output}: {options.ArchName} backbone ({options.StemName} stem, width {config.Model.Width}, {channels} input channels), torchvision names.");
            foreach (string line in PyTorchSnippet(output, options)) Console.WriteLine(line);
            Console.WriteLine($"Check in PyTorch (any width): /usr/bin/python3 tests/interop/torchvision_load.py {output}");
            return ExitCodes.Success;
        }
        catch (KeyNotFoundException e)
        {
            throw new InvalidDataException(e.Message, e); // a tensor or key the file lacks: not a checkpoint this can export (exit code 2)
        }
    }
}
