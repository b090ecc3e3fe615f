using System.Security.Cryptography.X509Certificates;
using SimClr.Coordinator;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Step;

namespace SimClr.Cli.Commands;

/// <summary>
/// The replicas of `simclr coordinator`: the workers at <paramref name="addresses"/>, joined once the stage has its
/// config and training data (<see cref="Join"/>), and let go when the command ends.
/// </summary>
internal sealed class RemoteReplicas(IReadOnlyList<Uri> addresses, TimeSpan callTimeout, TimeSpan healthTimeout, string? token, X509Certificate2? trusted,
    CancellationToken cancel) : IDisposable
{
    private readonly List<IReplicaEndpoint> _joined = [];

    /// <summary>Waits for every worker's health, then has each join the run of <paramref name="config"/> on <paramref name="train"/>.</summary>
    public IReadOnlyList<IReplicaEndpoint> Join(RunConfig config, ImageDataSet train)
    {
        Console.WriteLine($"joining {addresses.Count} worker(s): {string.Join(", ", addresses)}");
        var endpoints = WorkerPool.JoinAsync(addresses, config, train, callTimeout, healthTimeout, Console.WriteLine, token, cancel, trusted).GetAwaiter().GetResult();
        _joined.AddRange(endpoints);
        return endpoints;
    }

    public void Dispose()
    {
        foreach (var endpoint in _joined) endpoint.Dispose();
    }
}
