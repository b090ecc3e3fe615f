using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Worker;

/// <summary>
/// The replica a worker serves, built from the run config the coordinator sent, behind the same
/// <see cref="LocalReplicaEndpoint"/> the single-process trainer drives. Built and touched only on the TorchThread.
/// </summary>
internal sealed class ReplicaSession : IDisposable
{
    public ReplicaSession(RunConfig config, int channels, int height, int width, double[] mean, double[] std, int classes, Device device)
    {
        Config = config;
        Channels = channels;
        Height = height;
        Width = width;
        Endpoint = new(ModelReplica.Build(config, channels, mean, std, device, classes, loadPretrained: false)); // identical on every worker; weights arrive by LoadState
        var layout = new Dictionary<string, StateTensor>();
        foreach (var (name, tensor) in Replica.Network.state_dict())
            layout[Checkpoint.ModelPrefix + name] = new StateTensor(tensor.is_floating_point(), tensor.shape);
        foreach (var (name, parameter) in Replica.Parameters) // momentum buffers, one a parameter at most
            layout[Checkpoint.OptimizerPrefix + name] = new StateTensor(true, parameter.shape);
        StateLayout = layout;
        StateBytes = layout.Values.Sum(t => t.Bytes);
    }

    public RunConfig Config { get; }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public LocalReplicaEndpoint Endpoint { get; }

    public ModelReplica Replica => Endpoint.Replica;

    public long ParameterCount => Replica.ParameterCount;

    /// <summary>Every tensor a state sent to this replica may hold (<see cref="ModelReplica.State"/>'s names): its kind and shape.</summary>
    public IReadOnlyDictionary<string, StateTensor> StateLayout { get; }

    /// <summary>The bytes of all of <see cref="StateLayout"/>: the most a state sent to this replica can be.</summary>
    public long StateBytes { get; }

    public void Dispose() => Replica.Dispose();
}

/// <summary>One tensor of a replica's state as it travels: float32 (<paramref name="IsFloat"/>) or int64, and its shape.</summary>
internal sealed record StateTensor(bool IsFloat, long[] Shape)
{
    public long Bytes => Shape.Aggregate(1L, (n, d) => n * d) * (IsFloat ? 4 : 8);
}
