using System.Security.Cryptography;
using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Worker;

/// <summary>The replica a worker serves, built from the run config the coordinator sent. Touched only on the TorchThread.</summary>
internal sealed class ReplicaSession : IDisposable
{
    public ReplicaSession(RunConfig config, int channels, int height, int width, double[] mean, double[] std, Device device)
    {
        Config = config;
        Channels = channels;
        Height = height;
        Width = width;
        Replica = ContrastiveReplica.Build(config, channels, mean, std, device); // identical on every worker
        Parameters = Network.named_parameters().Select(p => (p.name, p.parameter)).ToList();
    }

    public RunConfig Config { get; }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public SimClrNetwork Network => Replica.Network;

    public List<(string Name, TorchSharp.Modules.Parameter Parameter)> Parameters { get; }

    public MomentumOptimizer Optimizer => Replica.Optimizer;

    public ContrastiveReplica Replica { get; }

    public long ParameterCount => Parameters.Sum(p => p.Parameter.numel());

    /// <summary>All parameter gradients, flattened in state order, as float32 bytes.</summary>
    public byte[] FlatGradient()
    {
        using var scope = NewDisposeScope();
        var parts = Parameters.Select(p => (p.Parameter.grad ?? zeros_like(p.Parameter)).flatten().to_type(ScalarType.Float32).cpu()).ToList();
        return cat(parts, 0).bytes.ToArray();
    }

    /// <summary>Installs the reduced gradient and applies one optimiser step.</summary>
    public void Step(ReadOnlySpan<byte> gradient, double learningRate)
    {
        using (var scope = NewDisposeScope())
        {
            var flat = empty([gradient.Length / 4], ScalarType.Float32);
            gradient.CopyTo(flat.bytes);
            long offset = 0;
            using (no_grad())
            {
                foreach (var (_, p) in Parameters)
                {
                    var slice = flat.narrow(0, offset, p.numel()).view(p.shape).to(p.device).to_type(p.dtype);
                    if (p.grad is null) p.grad = slice.clone().DetachFromDisposeScope();
                    else p.grad.copy_(slice);
                    offset += p.numel();
                }
            }
        }
        Optimizer.Step(learningRate);
    }

    /// <summary>SHA-256 (first 16 hex digits) of every parameter's bytes in state order: equal on bit-identical replicas.</summary>
    public string Checksum()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in Parameters)
        {
            using var cpu = p.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    public void Dispose()
    {
        Replica.Dispose();
    }
}
