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
        var output = new Option<string>("--out") { Description = "file to write", DefaultValueFactory = _ => "backbone.safetensors" };
        var command = new Command("export", "Write a checkpoint's backbone for PyTorch: torchvision resnet18 names (CIFAR stem, no fc), safetensors.")
        {
            checkpoint, output,
        };
        command.SetAction(r => Run(r.GetValue(checkpoint)!, r.GetValue(output)!));
        return command;
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
            Console.WriteLine($"wrote {output}: ResNet-18 backbone (width {config.Model.Width}, {channels} input channels), torchvision names.");
            Console.WriteLine("PyTorch: m = torchvision.models.resnet18(); m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity();");
            Console.WriteLine($"         m.load_state_dict(safetensors.torch.load_file('{output}'), strict=False)  # only fc stays untrained");
            Console.WriteLine($"Check in PyTorch (any width): /usr/bin/python3 tests/interop/torchvision_load.py {output}");
            return 0;
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or KeyNotFoundException)
        {
            Console.Error.WriteLine($"simclr export: {e.Message}");
            return 2;
        }
    }
}
