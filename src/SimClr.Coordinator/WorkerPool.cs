using Grpc.Core;
using Grpc.Health.V1;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Step;
using SimClr.Protocol;

namespace SimClr.Coordinator;

/// <summary>Connects to a run's workers: waits for each one's grpc.health.v1 status, then joins it to the run.</summary>
public static class WorkerPool
{
    /// <summary>Polls the standard health service until the worker answers SERVING, or <paramref name="timeout"/> passes.</summary>
    public static async Task WaitHealthyAsync(WorkerClient worker, TimeSpan timeout, CancellationToken cancel = default)
    {
        var health = new Health.HealthClient(worker.Channel);
        var until = DateTime.UtcNow + timeout;
        string last = "no answer";
        while (true)
        {
            try
            {
                var reply = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow + TimeSpan.FromSeconds(2), cancellationToken: cancel);
                if (reply.Status == HealthCheckResponse.Types.ServingStatus.Serving) return;
                last = reply.Status.ToString();
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                last = e.Status.Detail;
            }
            if (DateTime.UtcNow >= until)
                throw new WorkerUnavailableException($"worker {worker.Address} is not healthy after {timeout.TotalSeconds:F0} s ({last}); is it running (simclr worker --port ...)?");
            await Task.Delay(200, cancel);
        }
    }

    /// <summary>Connects to every worker (in the given order: replica 0 is the first), and joins them all to this run.</summary>
    public static async Task<IReadOnlyList<IReplicaEndpoint>> JoinAsync(IReadOnlyList<Uri> addresses, RunConfig config, ImageDataSet train,
        TimeSpan callTimeout, TimeSpan healthTimeout, Action<string>? log = null, string? token = null, CancellationToken cancel = default,
        System.Security.Cryptography.X509Certificates.X509Certificate2? trusted = null)
    {
        if (addresses.Count == 0) throw new ConfigException("no workers given");
        var request = new JoinRequest
        {
            Version = ProtocolVersion._1,
            ConfigJson = RunConfigLoader.Serialize(config),
            ModelHash = RunConfigLoader.ModelHash(config),
            RunId = config.RunName ?? "",
            Data = new DataShape
            {
                Channels = train.Channels,
                Height = train.Height,
                Width = train.Width,
                Classes = train.ClassNames.Count,
                SharedStorage = config.Data.SharedStorage,
                Count = train.Count,
                Fingerprint = config.Data.SharedStorage ? train.Fingerprint() : "",
            },
        };
        request.Data.Mean.AddRange(train.Mean);
        request.Data.Std.AddRange(train.Std);
        var clients = addresses.Select(a => new WorkerClient(a, callTimeout, token, trusted)).ToList();
        try
        {
            await Task.WhenAll(clients.Select(c => WaitHealthyAsync(c, healthTimeout, cancel)));
            var replies = await Task.WhenAll(clients.Select(async c =>
            {
                try
                {
                    return await c.JoinAsync(request, cancel);
                }
                catch (RpcException e)
                {
                    throw new WorkerUnavailableException($"worker {c.Address} refused to join: {e.Status.Detail}", e);
                }
            }));
            for (int w = 0; w < clients.Count; w++)
                log?.Invoke($"worker {w}: {clients[w].Address} id {replies[w].WorkerId}, device {replies[w].Device}, {replies[w].Threads} threads"
                    + (replies[w].DeviceCollective.Length > 0 ? $", {replies[w].DeviceCollective}" : ""));
            if (config.Data.SharedStorage)
                log?.Invoke($"data.sharedStorage: every worker opened its own copy of {train.Name} ({train.Count} images, fingerprint {request.Data.Fingerprint}); shards carry indices only");
            return clients.Select((c, w) => Endpoint(c, w, replies[w])).ToList();

            // the endpoint for replica w, which can reconnect to the same address after a loss
            IReplicaEndpoint Endpoint(WorkerClient client, int w, JoinReply joined) =>
                new GrpcReplicaEndpoint(client, $"worker {w} ({client.Address.Authority})", config.Faults, async stop =>
                {
                    var fresh = new WorkerClient(client.Address, callTimeout, token, trusted);
                    try
                    {
                        await WaitHealthyAsync(fresh, TimeSpan.FromSeconds(1), cancel: stop);
                        var reply = await fresh.JoinAsync(request, stop);
                        return Endpoint(fresh, w, reply);
                    }
                    catch (Exception e) when (e is WorkerUnavailableException or RpcException or OperationCanceledException)
                    {
                        fresh.Dispose();
                        return null;
                    }
                })
                {
                    DeviceCollective = joined.DeviceCollective.Length > 0 ? joined.DeviceCollective : null,
                    DeviceCollectiveProblem = joined.DeviceCollectiveProblem.Length > 0 ? joined.DeviceCollectiveProblem : GrpcReplicaEndpoint.Unsaid,
                };
        }
        catch
        {
            foreach (var c in clients) c.Dispose();
            throw;
        }
    }
}
