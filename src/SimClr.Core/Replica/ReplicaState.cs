using SimClr.Core.Checkpoints;
using SimClr.Core.Optim;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>A replica's whole training state as named tensors (the checkpoint's names: "model." + state_dict,
/// "optimizer." + momentum buffers), and the checksum that tells bit-identical replicas.</summary>
public static class ReplicaState
{
    /// <summary>The state of <paramref name="network"/> and <paramref name="optimizer"/>, as views (not copies).</summary>
    public static IEnumerable<(string Name, Tensor Tensor)> Of(nn.Module network, MomentumOptimizer optimizer) =>
        network.state_dict().Select(kv => (Checkpoint.ModelPrefix + kv.Key, kv.Value))
            .Concat(optimizer.State().Select(t => (Checkpoint.OptimizerPrefix + t.Name, t.Tensor)));

    /// <summary>Replaces the model and optimiser state with <paramref name="state"/> (names as <see cref="Of"/>); every
    /// model tensor must be there with its shape. Everything is checked before anything changes.</summary>
    public static void Load(nn.Module network, MomentumOptimizer optimizer, IReadOnlyDictionary<string, Tensor> state)
    {
        var model = network.state_dict();
        var unknown = state.Keys.Where(k => !(k.StartsWith(Checkpoint.ModelPrefix, StringComparison.Ordinal) && model.ContainsKey(k[Checkpoint.ModelPrefix.Length..]))
            && !k.StartsWith(Checkpoint.OptimizerPrefix, StringComparison.Ordinal)).ToList();
        if (unknown.Count > 0) throw new InvalidDataException($"state names {unknown.Count} tensor(s) this model does not have (first: {unknown[0]})");
        var missing = model.Keys.Where(k => !state.ContainsKey(Checkpoint.ModelPrefix + k)).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"state lacks {missing.Count} model tensor(s) (first: {missing[0]})");
        foreach (var (name, target) in model)
        {
            var source = state[Checkpoint.ModelPrefix + name];
            if (!source.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"state for '{name}' has shape [{string.Join(", ", source.shape)}], the model [{string.Join(", ", target.shape)}]");
        }
        var momentum = state.Where(kv => kv.Key.StartsWith(Checkpoint.OptimizerPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[Checkpoint.OptimizerPrefix.Length..], kv => kv.Value);
        optimizer.LoadState(momentum, replace: true); // checks everything before it changes anything
        using (no_grad())
        {
            foreach (var (name, target) in model) target.copy_(state[Checkpoint.ModelPrefix + name]);
        }
    }

    /// <summary>SHA-256 (first 16 hex digits) of every parameter's bytes in state order: equal on bit-identical replicas.
    /// Read from the device in one copy (the parameters concatenated there), counted on <paramref name="syncs"/>.</summary>
    public static string Checksum(IReadOnlyList<(string Name, Parameter Parameter)> parameters, Runtime.HostSyncs syncs)
    {
        using var scope = NewDisposeScope();
        byte[] bytes = parameters.Count == 0 ? [] : syncs.Copy(cat(parameters.Select(p => p.Parameter.detach().flatten()).ToList(), 0));
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..16];
    }
}
