using System.Security.Cryptography;
using SimClr.Core.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// What tells bit-identical replicas apart every step without moving their parameters: for each parameter tensor the
/// float64 dot product of its values with a fixed pseudo-random vector (values in ±[1, 2), the same on every replica,
/// made once on the device), computed on the device and read in one copy of one value per tensor, hashed to 16 hex
/// digits. A one-ulp change of one value moves its tensor's dot product by at least ulp(value) (far above float64's
/// rounding of the sum unless the value is many orders of magnitude below its tensor's typical one), so it is caught at
/// the next step; a change below that, and anything the dot products miss, is caught by the SHA-256 of all parameters
/// (<see cref="ReplicaState.Checksum"/>) that runs at checkpoints and every <c>checksumEverySteps</c>. Replicas compare
/// fingerprints computed by the same kernels: on the same kind of device and with the same thread count (the premise
/// of bit-identical replicas already: LARS's norms are reductions too).
/// </summary>
public sealed class ParameterFingerprint(IReadOnlyList<Parameter> parameters) : IDisposable
{
    /// <summary>The vector's seed: part of the format, the same in every process.</summary>
    public const long Seed = 0x5EED_F1;

    private List<Tensor>? _weights;

    /// <summary>The fingerprint now ("fp:" and 16 hex digits), one read on <paramref name="syncs"/>.</summary>
    public string Of(HostSyncs syncs)
    {
        using var scope = NewDisposeScope();
        var weights = _weights ??= Weights();
        double[] dots;
        using (no_grad())
        {
            var each = parameters.Select((p, i) => p.detach().to_type(ScalarType.Float64).mul(weights[i]).sum()).ToList();
            dots = each.Count == 0 ? [] : syncs.Values(stack(each));
        }
        byte[] bytes = new byte[dots.Length * sizeof(double)];
        Buffer.BlockCopy(dots, 0, bytes, 0, bytes.Length);
        return "fp:" + Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
    }

    /// <summary>One float32 tensor per parameter on its device, values in ±[1, 2) from a generator of its own.</summary>
    private List<Tensor> Weights()
    {
        using var generator = new TorchSharp.torch.Generator((ulong)Seed);
        return parameters.Select(p =>
        {
            using var scope = NewDisposeScope();
            var magnitude = rand(p.shape, ScalarType.Float64, generator: generator).ShiftInPlace(Scalars.One);
            var sign = rand(p.shape, ScalarType.Float64, generator: generator).lt(Scalars.Half).to_type(ScalarType.Float64).mul_(Scalars.Two).ShiftInPlace(Scalars.MinusOne);
            return magnitude.mul_(sign).to_type(ScalarType.Float32).to(p.device).DetachFromDisposeScope();
        }).ToList();
    }

    public void Dispose()
    {
        _weights?.ForEach(w => w.Dispose());
        _weights = null;
    }
}
