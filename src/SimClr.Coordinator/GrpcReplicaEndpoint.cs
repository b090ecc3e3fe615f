using Grpc.Core;
using Grpc.Health.V1;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Wire;

namespace SimClr.Coordinator;

/// <summary>
/// A replica in a worker process: <see cref="IReplicaEndpoint"/> over the Worker service's chunked calls. Every call
/// is watched: while it runs, the worker's grpc.health.v1 service is asked every heartbeat interval; a worker that
/// misses <see cref="FaultOptions.HeartbeatMisses"/> in a row (a hung or stopped process, a dead link) is counted
/// lost and its call cancelled, and a call that fails because the worker is gone or broke (Unavailable, Internal,
/// Cancelled, FailedPrecondition from a restarted worker, ...) becomes a <see cref="ReplicaLostException"/>, which
/// the step handles by its fault policy. InvalidArgument stays what it is: a bug on this side.
/// </summary>
public sealed class GrpcReplicaEndpoint(WorkerClient client, string name, FaultOptions? faults = null,
    Func<CancellationToken, Task<IReplicaEndpoint?>>? reconnect = null) : IReplicaEndpoint
{
    private readonly FaultOptions _faults = faults ?? new FaultOptions();
    private byte[]? _localGradient; // the worker's own gradient, kept here for an ApplyStep of StepGradient.Own

    public WorkerClient Client { get; } = client;

    public string Name { get; } = name;

    public async Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel)
    {
        var header = WireMapping.ToWire(work);
        var (z, times) = await Watched("Forward", token => Client.ForwardAsync(header, work.ImageShape, work.Images, token), cancel);
        if (z.DType != DType.Float32) throw new ProtocolViolation($"{Name} answered projections as {z.DType}, not float32");
        return new(WireMapping.ToFloatBlock(z), times);
    }

    public async Task<Timed<GradientBytes?>> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel)
    {
        var (local, times) = await Watched("Backward", token => Client.BackwardAsync(gradient.Shape, gradient.Data, token), cancel);
        if (local.DType is not (DType.Float32 or DType.Float64) || local.Shape.Length != 1)
            throw new ProtocolViolation($"{Name} answered a gradient {local.DType} [{string.Join(", ", local.Shape)}], not a flat float32 or float64 tensor");
        var bytes = WireMapping.ToGradient(local);
        _localGradient = returnGradient ? null : bytes.ToFloat32();
        return new(returnGradient ? bytes : null, times);
    }

    public string? PeerAddress => Client.Address.ToString();

    /// <summary>What the worker said at Join: the devices' collective library it can sum over, or empty.</summary>
    public string? DeviceCollective { get; init; }

    public string DeviceCollectiveProblem { get; init; } = Unsaid;

    /// <summary>The problem of a worker whose Join did not say what it can sum over.</summary>
    public const string Unsaid = "it did not say why (a worker older than NCCL support)";

    public async Task<byte[]> NewCommunicatorIdAsync(CancellationToken cancel)
    {
        byte[] id = await Watched("NewCommunicatorId", Client.NewCommunicatorIdAsync, cancel);
        if (id.Length is 0 or > WireLimits.MaxCommunicatorIdBytes) throw new ProtocolViolation($"{Name} answered a communicator id of {id.Length} bytes");
        return id;
    }

    public async Task<Timed<long>> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel)
    {
        _localGradient = null;
        var spec = WireMapping.ToWire(ring, rank);
        try
        {
            var (reply, times) = await Watched("BackwardReduce", token => Client.BackwardReduceAsync(spec, gradient.Shape, gradient.Data, token), cancel);
            return new(reply.NonFinite, times);
        }
        catch (RpcException e) when (cancel.IsCancellationRequested)
        {
            throw new OperationCanceledException($"{Name}: BackwardReduce cancelled ({e.StatusCode})", e, cancel); // stopped because another call failed
        }
    }

    public async Task<Timed<string?>> ApplyStepAsync(long step, double learningRate, StepGradient gradient, Core.Step.Agreement agreement, CancellationToken cancel)
    {
        byte[]? send = gradient.Source switch
        {
            GradientSource.Sent => gradient.Sum,
            GradientSource.Ring => null, // the worker applies the sum its ring left on it
            _ => _localGradient ?? throw new InvalidOperationException($"{Name}: no gradient to apply (Backward first)"),
        };
        _localGradient = null;
        if (gradient.Source == GradientSource.Own && GradientSum.CountNonFinite(send) is > 0 and var bad)
            throw new NonFiniteGradientException($"the gradient has {bad} non-finite value(s)"); // its own, sent back: checked here
        var (result, times) = await Watched("ApplyStep", token => Client.ApplyStepAsync(step, learningRate, send, agreement == Core.Step.Agreement.Full, token), cancel);
        return new(result, times);
    }

    public async Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel)
    {
        var tensors = await Watched("SaveState", Client.SaveStateAsync, cancel);
        return tensors.Select(t => t.DType is DType.Float32 or DType.Int64 ? WireMapping.ToNamedBytes(t)
            : throw new ProtocolViolation($"{Name} sent state tensor {t.Name} as {t.DType}; state travels as float32 or int64")).ToList();
    }

    public async Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel)
    {
        var reply = await Watched("LoadState", token => Client.LoadStateAsync(state, token), cancel);
        if (reply.Tensors != state.Count) throw new ProtocolViolation($"{Name} loaded {reply.Tensors} of {state.Count} state tensors");
        return reply.Checksum;
    }

    /// <summary>Statuses that mean the worker (not this side's request) failed: it is gone, restarted, broken or unreachable.</summary>
    public static bool MeansLost(StatusCode code) => code is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled
        or StatusCode.DeadlineExceeded or StatusCode.FailedPrecondition or StatusCode.ResourceExhausted or StatusCode.Aborted or StatusCode.DataLoss;

    private async Task<T> Watched<T>(string call, Func<CancellationToken, Task<T>> work, CancellationToken cancel)
    {
        using var scope = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var running = work(scope.Token);
        var heartbeat = Heartbeat(scope.Token);
        var first = await Task.WhenAny(running, heartbeat);
        if (first == heartbeat && heartbeat.Result is { } silent)
        {
            await scope.CancelAsync(); // stop the call; its failure is not the news
            try
            {
                await running;
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or HttpRequestException)
            {
            }
            throw new ReplicaLostException($"{Name}: {silent} during {call}");
        }
        await scope.CancelAsync(); // the call finished: stop the heartbeat
        try
        {
            return await running;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Aborted && e.Trailers.GetValue(RingTrailer.Key) == RingTrailer.Broken)
        {
            throw new RingBrokenException(e.Status.Detail, e); // a peer failed, not this worker: the step's to sort out
        }
        catch (RpcException e) when (MeansLost(e.StatusCode) && !cancel.IsCancellationRequested)
        {
            throw new ReplicaLostException($"{Name}: {call} failed ({e.StatusCode}: {e.Status.Detail})", e);
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !cancel.IsCancellationRequested) // the connection broke mid-call
        {
            throw new ReplicaLostException($"{Name}: {call} failed ({e.Message})", e);
        }
    }

    /// <summary>Completes with a reason when the worker has missed too many health checks in a row; with null when stopped.</summary>
    private async Task<string?> Heartbeat(CancellationToken stop)
    {
        var health = new Health.HealthClient(Client.Channel);
        var interval = TimeSpan.FromSeconds(_faults.HeartbeatSeconds);
        int misses = 0;
        try
        {
            while (true)
            {
                await Task.Delay(interval, stop);
                try
                {
                    var reply = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow + interval, cancellationToken: stop);
                    misses = reply.Status == HealthCheckResponse.Types.ServingStatus.Serving ? 0 : misses + 1;
                }
                catch (RpcException) when (!stop.IsCancellationRequested)
                {
                    misses++;
                }
                if (misses >= _faults.HeartbeatMisses)
                    return $"no answer to {misses} health checks in a row ({misses * _faults.HeartbeatSeconds:F0} s)";
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    public Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) =>
        reconnect is null ? Task.FromResult<IReplicaEndpoint?>(null) : reconnect(cancel);

    public void Dispose() => Client.Dispose();
}
