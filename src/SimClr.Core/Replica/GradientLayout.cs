using SimClr.Core.Collectives;
using SimClr.Core.Models;
using SimClr.Core.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// Where every parameter's gradient sits in the flat gradient (parameters in state order, stage after stage): the
/// layout that every replica, the star's sum and the ring share, its cut into buckets of whole stages, and the copies
/// between the parameters' gradients and flat bytes: a bucket is flattened on the device into one contiguous buffer
/// and leaves it in one copy (counted on <see cref="HostSyncs"/> as a transport's); a flat sum comes back in one copy
/// and is scattered into the gradients on the device.
/// </summary>
public sealed class GradientLayout
{
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _parameters;
    private readonly int[] _stageParameterStart; // per stage, then the total: index of its first parameter in state order
    private readonly long[] _stageValueStart; // per stage, then the total: offset of its first value in the flat gradient
    private readonly HostSyncs _syncs;

    public GradientLayout(IReadOnlyList<ModelStage> stages, IReadOnlyList<(string Name, Parameter Parameter)> parameters, HostSyncs syncs)
    {
        _syncs = syncs;
        if (!stages.SelectMany(stage => stage.Parameters).SequenceEqual(parameters.Select(p => p.Parameter), ReferenceEqualityComparer.Instance))
            throw new InvalidOperationException("the network's stages do not hold its parameters in state order");
        _parameters = parameters;
        Stages = stages.Count;
        _stageParameterStart = new int[stages.Count + 1];
        _stageValueStart = new long[stages.Count + 1];
        for (int s = 0; s < stages.Count; s++)
        {
            _stageParameterStart[s + 1] = _stageParameterStart[s] + stages[s].Parameters.Count;
            _stageValueStart[s + 1] = _stageValueStart[s] + stages[s].Parameters.Sum(p => p.numel());
        }
    }

    public int Stages { get; }

    /// <summary>Values in the flat gradient (the trainable parameters' elements).</summary>
    public long Count => _stageValueStart[^1];

    /// <summary>
    /// The flat gradient cut into buckets of whole stages, in the order backward finishes them (last stage first): each
    /// bucket takes stages until the next would bring it over <paramref name="capBytes"/> of float32 (a stage larger
    /// than the cap is a bucket of its own); 0 or less: one bucket. DDP's buckets, at stage granularity (PyTorch's default
    /// cap is 25 MB). Depends on the model alone, so every replica of a run computes the same buckets.
    /// </summary>
    public IReadOnlyList<GradientBucket> Buckets(long capBytes)
    {
        var buckets = new List<GradientBucket>();
        int last = Stages - 1;
        long bytes = 0;
        for (int s = Stages - 1; s >= 0; s--)
        {
            long stageBytes = (_stageValueStart[s + 1] - _stageValueStart[s]) * 4;
            if (capBytes > 0 && bytes > 0 && stageBytes > 0 && bytes + stageBytes > capBytes)
            {
                buckets.Add(Bucket(s + 1, last));
                last = s;
                bytes = 0;
            }
            bytes += stageBytes;
        }
        buckets.Add(Bucket(0, last));
        return buckets;
    }

    private GradientBucket Bucket(int first, int last) => new(first, last, _stageParameterStart[first], _stageParameterStart[last + 1],
        _stageValueStart[first], _stageValueStart[last + 1] - _stageValueStart[first]);

    /// <summary>Checks that <paramref name="buckets"/> cover every stage, last first, one after the other.</summary>
    public void CheckCover(IReadOnlyList<GradientBucket> buckets)
    {
        if (buckets.Count == 0 || buckets[0].LastStage != Stages - 1 || buckets[^1].FirstStage != 0
            || buckets.Zip(buckets.Skip(1)).Any(pair => pair.Second.LastStage != pair.First.FirstStage - 1))
            throw new ArgumentException($"buckets [{string.Join(", ", buckets)}] do not cover the {Stages} stages, last first", nameof(buckets));
    }

    /// <summary>Parameters [first, end)'s gradients flattened in state order: their float64 <paramref name="sums"/> when
    /// given, else their float32 gradients (zeros where none). The bytes of one bucket, or of the whole gradient: one
    /// buffer on the device, one copy to the host.</summary>
    public GradientBytes Flatten(int first, int end, IReadOnlyList<Tensor>? sums)
    {
        if (end <= first) return new GradientBytes([], Float64: sums is not null);
        using var scope = NewDisposeScope();
        return new GradientBytes(_syncs.Transport(FlattenOnDevice(first, end, sums)), Float64: sums is not null);
    }

    /// <summary>Parameters [first, end)'s gradients flattened in state order into one new contiguous buffer on the device
    /// (<see cref="Flatten"/>'s values, not copied anywhere): float64 from <paramref name="sums"/>, else float32. For a
    /// collective that sums on the device; <see cref="Scatter"/> puts the sum back.</summary>
    public Tensor FlattenOnDevice(int first, int end, IReadOnlyList<Tensor>? sums)
    {
        using var scope = NewDisposeScope();
        var parts = sums is not null
            ? Enumerable.Range(first, end - first).Select(i => sums[i].flatten()).ToList()
            : Enumerable.Range(first, end - first).Select(i => (_parameters[i].Parameter.grad ?? zeros_like(_parameters[i].Parameter)).flatten().to_type(ScalarType.Float32)).ToList();
        return cat(parts, 0).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Puts <paramref name="flat"/> (laid out as <see cref="FlattenOnDevice"/> made it for [first, end)) back on the
    /// device: into <paramref name="sums"/> when given (the caller rounds them into the gradients), else into the
    /// parameters' gradients (an NCCL sum, or <see cref="Install"/>'s gradient).</summary>
    public void Scatter(int first, int end, Tensor flat, IReadOnlyList<Tensor>? sums)
    {
        using var scope = NewDisposeScope();
        long offset = 0;
        using (no_grad())
        {
            for (int i = first; i < end; i++)
            {
                var p = _parameters[i].Parameter;
                var slice = flat.narrow(0, offset, p.numel()).view(p.shape);
                offset += p.numel();
                if (sums is not null) sums[i].copy_(slice);
                else if (p.grad is null) p.grad = slice.to(p.device).to_type(p.dtype).clone().DetachFromDisposeScope();
                else p.grad.copy_(slice);
            }
        }
    }

    /// <summary>Installs a flat float32 gradient (as <see cref="Flatten"/> lays it out) as the parameters' gradients: one
    /// copy to the device, the parameters' slices taken there.</summary>
    public void Install(ReadOnlySpan<byte> gradient)
    {
        if (gradient.Length != Count * 4)
            throw new ArgumentException($"a flat gradient of {gradient.Length} bytes for {Count} parameters");
        if (_parameters.Count == 0) return;
        using var scope = NewDisposeScope();
        var host = empty([gradient.Length / 4], ScalarType.Float32);
        gradient.CopyTo(host.bytes);
        var device = _parameters[0].Parameter.device;
        Scatter(0, _parameters.Count, device.type == TorchSharp.DeviceType.CPU ? host : host.to(device), null);
    }
}
