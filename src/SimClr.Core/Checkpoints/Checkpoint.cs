using static TorchSharp.torch;

namespace SimClr.Core.Checkpoints;

/// <summary>
/// Everything needed to continue a run exactly: the model's state_dict (prefix "model."), the optimiser's momentum
/// buffers ("optimizer."), and the position (step; epoch and batch follow from it and the seeded sampler; all
/// randomness is a function of (seed, epoch, index, view), so no RNG state is needed). One safetensors file,
/// written atomically; a checkpoint never contains a non-finite value.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string ModelPrefix = "model.";
    public const string OptimizerPrefix = "optimizer.";

    public required long Step { get; init; }

    public required string Stage { get; init; }

    public required string ConfigJson { get; init; }

    public required Dictionary<string, Tensor> Model { get; init; }

    public required Dictionary<string, Tensor> Optimizer { get; init; }

    public Dictionary<string, string> Extra { get; init; } = [];

    /// <summary>The file it was read from (null when built in memory).</summary>
    public string? Source { get; init; }

    public static void Save(string path, long step, string stage, string configJson, IEnumerable<(string Name, Tensor Tensor)> model,
        IEnumerable<(string Name, Tensor Tensor)> optimizer, IReadOnlyDictionary<string, string>? extra = null)
    {
        var tensors = model.Select(t => (ModelPrefix + t.Name, t.Tensor)).Concat(optimizer.Select(t => (OptimizerPrefix + t.Name, t.Tensor))).ToList();
        foreach (var (name, tensor) in tensors)
        {
            if (tensor.is_floating_point() && !isfinite(tensor).all().item<bool>())
                throw new InvalidOperationException($"refusing to checkpoint: {name} holds a non-finite value");
        }
        var metadata = new Dictionary<string, string>(extra ?? new Dictionary<string, string>())
        {
            ["format"] = "simclr-checkpoint-1",
            ["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["stage"] = stage,
            ["config"] = configJson,
        };
        AtomicFile.Write(path, stream => SafeTensors.Write(stream, tensors, metadata));
    }

    public static Checkpoint Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint {path} does not exist", path);
        var (tensors, metadata) = SafeTensors.Read(path);
        if (!metadata.TryGetValue("format", out var format) || format != "simclr-checkpoint-1")
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new InvalidDataException($"{path} is not a simclr checkpoint (an exported backbone? use it as 'pretrained')");
        }
        return new Checkpoint
        {
            Step = long.Parse(metadata["step"], System.Globalization.CultureInfo.InvariantCulture),
            Stage = metadata["stage"],
            ConfigJson = metadata["config"],
            Model = tensors.Where(kv => kv.Key.StartsWith(ModelPrefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[ModelPrefix.Length..], kv => kv.Value),
            Optimizer = tensors.Where(kv => kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[OptimizerPrefix.Length..], kv => kv.Value),
            Extra = metadata,
            Source = path,
        };
    }

    public void Dispose()
    {
        foreach (var t in Model.Values.Concat(Optimizer.Values)) t.Dispose();
    }
}
