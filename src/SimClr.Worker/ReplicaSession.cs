using SimClr.Core.Config;
using SimClr.Core.Training;
using static TorchSharp.torch;

namespace SimClr.Worker;

/// <summary>
/// The replica a worker serves, built from the run config the coordinator sent, behind the same
/// <see cref="LocalReplicaEndpoint"/> the single-process trainer drives. Touched only on the TorchThread.
/// </summary>
internal sealed class ReplicaSession(RunConfig config, int channels, int height, int width, double[] mean, double[] std, int classes, Device device) : IDisposable
{
    public RunConfig Config { get; } = config;

    public int Channels { get; } = channels;

    public int Height { get; } = height;

    public int Width { get; } = width;

    public LocalReplicaEndpoint Endpoint { get; } = new(ModelReplica.Build(config, channels, mean, std, device, classes, loadPretrained: false)); // identical on every worker; weights arrive by LoadState

    public ModelReplica Replica => Endpoint.Replica;

    public long ParameterCount => Replica.ParameterCount;

    public void Dispose() => Replica.Dispose();
}
