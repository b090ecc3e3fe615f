using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Core.Checkpoints;

/// <summary>
/// The backbone alone, with torchvision's names (no fc): what Python users load into torchvision's resnet18/34/50 with
/// the same stem (safetensors.torch.load_file, then model.load_state_dict(..., strict=False)), and what finetune,
/// linear-eval and knn-eval start from.
/// </summary>
public static class BackboneWeights
{
    private const string NetworkPrefix = "backbone.";

    /// <summary>Writes the backbone's state_dict with torchvision names as safetensors.</summary>
    public static void Export(ResNet backbone, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var state = backbone.state_dict().Where(kv => !kv.Key.StartsWith("fc.", StringComparison.Ordinal)).Select(kv => (kv.Key, kv.Value));
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>())
        {
            ["format"] = $"torchvision-{backbone.Options.ArchName}-{backbone.Options.StemName}-stem",
            ["arch"] = backbone.Options.ArchName,
            ["stem"] = backbone.Options.StemName,
            ["probe_features"] = ProbeFeatures(backbone),
            ["width"] = backbone.Options.Width.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["input_channels"] = backbone.Options.InputChannels.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        AtomicFile.Write(path, stream => SafeTensors.Write(stream, state, meta));
    }

    /// <summary>
    /// The eval-mode features of a fixed input, sin(0..2*C*32*32-1) as [2, C, 32, 32], stored in every export so that
    /// another framework can check it loaded the weights right (tests/interop/torchvision_load.py).
    /// </summary>
    public static string ProbeFeatures(ResNet backbone)
    {
        bool training = backbone.training;
        backbone.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            int channels = backbone.Options.InputChannels;
            var device = backbone.parameters().First().device;
            var x = arange(2 * channels * 32 * 32, dtype: ScalarType.Float32, device: device).sin().reshape(2, channels, 32, 32);
            var features = backbone.Features(x).cpu().to_type(ScalarType.Float32).data<float>().ToArray();
            return string.Join(",", features.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        }
        finally
        {
            backbone.train(training);
        }
    }

    /// <summary>Backbone tensors (torchvision names) from an export or from a pre-training checkpoint.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"pretrained weights {path} do not exist", path);
        var (tensors, metadata) = SafeTensors.Read(path);
        if (metadata.GetValueOrDefault("format") == "simclr-checkpoint-1")
        {
            // a pre-training checkpoint holds "model.backbone.*"; a classifier checkpoint torchvision names under "model."
            string prefix = tensors.Keys.Any(k => k.StartsWith(Checkpoint.ModelPrefix + NetworkPrefix, StringComparison.Ordinal))
                ? Checkpoint.ModelPrefix + NetworkPrefix
                : Checkpoint.ModelPrefix;
            var backbone = new Dictionary<string, Tensor>();
            foreach (var (name, tensor) in tensors)
            {
                if (name.StartsWith(prefix, StringComparison.Ordinal) && !name.StartsWith(prefix + "fc.", StringComparison.Ordinal)) backbone[name[prefix.Length..]] = tensor;
                else tensor.Dispose();
            }
            return backbone;
        }
        return tensors;
    }

    /// <summary>Copies the weights into a backbone or classifier; every backbone tensor must be present with its shape.</summary>
    public static void LoadInto(ResNet network, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        var expected = network.state_dict().Where(kv => !kv.Key.StartsWith("fc.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var mismatches = StateDictCheck.Compare(expected, weights, checkTypes: false, allowExtra: true);
        var missing = mismatches.Where(m => m.Found is null).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{source} lacks {missing.Count} backbone tensors (first: {missing[0].Name}); is it a {network.Options.ArchName} backbone (model.arch)?");
        if (mismatches.Count > 0)
        {
            var first = mismatches[0];
            throw new InvalidDataException($"{source}: {first.Name} has shape {StateDictCheck.Shape(first.Found!)}, this network {StateDictCheck.Shape(first.Expected!)} (model.arch, model.stem, width or input channels differ?)");
        }
        using var noGrad = no_grad();
        foreach (var (name, target) in expected) target.copy_(weights[name]);
    }
}
