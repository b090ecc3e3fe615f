using Grpc.Core;
using Grpc.Net.Client;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Wire;

namespace SimClr.Coordinator;

/// <summary>The coordinator's typed view of one worker: each call streams tensors in checked chunks.</summary>
public sealed class WorkerClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly Protocol.Worker.WorkerClient _client;

    private readonly Metadata? _headers;

    /// <param name="trusted">For https addresses: a certificate to trust besides the system's roots (see <see cref="Tls"/>).</param>
    public WorkerClient(Uri address, TimeSpan callTimeout, string? token = null, System.Security.Cryptography.X509Certificates.X509Certificate2? trusted = null)
    {
        if (token is not null) _headers = new Metadata { { RunToken.Header, RunToken.BearerValue(token) } };
        Address = address;
        CallTimeout = callTimeout;
        _channel = WireChannel.Open(address, trusted);
        _client = new Protocol.Worker.WorkerClient(_channel);
    }

    public Uri Address { get; }

    public TimeSpan CallTimeout { get; }

    private CallOptions Options(CancellationToken cancel) => new(headers: _headers, deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancel);

    public async Task<JoinReply> JoinAsync(JoinRequest request, CancellationToken cancel = default) =>
        await _client.JoinAsync(request, Options(cancel));

    /// <summary>Sends a shard's images (uint8 [n, C, H, W]; none with shared storage) with their (index, view) and
    /// returns the projections.</summary>
    public async Task<Timed<TensorChunks.Received>> ForwardAsync(ShardHeader shard, long[] imageShape, byte[]? images, CancellationToken cancel = default)
    {
        using var call = _client.Forward(Options(cancel));
        var pixels = images is null ? [] : TensorChunks.Split("images", DType.Uint8, imageShape, images).Select(c => new ForwardMessage { Images = c });
        var z = await ExchangeAsync(call, pixels.Prepend(new ForwardMessage { Shard = shard }), cancel);
        return WithTimes(z, call.GetTrailers());
    }

    /// <summary>Sends dL/dz for the last forward and returns the worker's flat local gradient.</summary>
    public async Task<Timed<TensorChunks.Received>> BackwardAsync(long[] shape, byte[] gradient, CancellationToken cancel = default)
    {
        using var call = _client.Backward(Options(cancel));
        var local = await ExchangeAsync(call, TensorChunks.Split("dz", DType.Float32, shape, gradient), cancel);
        return WithTimes(local, call.GetTrailers());
    }

    /// <summary>Sends dL/dz for the last forward with the ring the worker's gradient is summed over (worker to worker).</summary>
    public async Task<Timed<ReduceReply>> BackwardReduceAsync(RingSpec ring, long[] shape, byte[] gradient, CancellationToken cancel = default)
    {
        using var call = _client.BackwardReduce(Options(cancel));
        // lazily: a chunk is made when it is written, never the whole gradient's chunks at once
        var reply = await SendAsync(call, TensorChunks.Split("dz", DType.Float32, shape, gradient).Select(c => new BackwardReduceMessage { Dz = c })
            .Prepend(new BackwardReduceMessage { Ring = ring }), cancel);
        return WithTimes(reply, call.GetTrailers());
    }

    /// <summary>A fresh unique id for a communicator of the devices' collective library (NCCL), made by this worker.</summary>
    public async Task<byte[]> NewCommunicatorIdAsync(CancellationToken cancel = default) =>
        (await _client.NewCommunicatorIdAsync(new CommunicatorIdRequest(), Options(cancel))).UniqueId.ToByteArray();

    /// <summary>Sends the reduced gradient (null: apply the sum the worker's last ring left it); returns the replica's
    /// parameter fingerprint after the step, or its SHA-256 checksum when <paramref name="full"/>.</summary>
    public async Task<Timed<string>> ApplyStepAsync(long step, double learningRate, byte[]? gradient, bool full = true, CancellationToken cancel = default)
    {
        using var call = _client.ApplyStep(Options(cancel));
        var header = new ApplyStepMessage
        {
            Step = new StepHeader { Step = step, LearningRate = learningRate, Reduced = gradient is null, Agreement = full ? Protocol.Agreement.Full : Protocol.Agreement.Fingerprint },
        };
        var chunks = gradient is null ? [] : TensorChunks.Split("gradient", DType.Float32, [gradient.Length / 4], gradient);
        var reply = await SendAsync(call, chunks.Select(c => new ApplyStepMessage { Gradient = c }).Prepend(header), cancel);
        if (reply.Step != step) throw new InvalidOperationException($"worker {Address} answered step {reply.Step} for step {step}");
        return WithTimes(reply.Checksum, call.GetTrailers());
    }

    /// <summary>A finished call's result with the replica's own times in it, read from the call's trailers (none, or a
    /// malformed one, is <see cref="ReplicaTimes.None"/>: <see cref="WireMapping.TimesOf"/>).</summary>
    private static Timed<T> WithTimes<T>(T value, Metadata trailers) => new(value, WireMapping.TimesOf(trailers));

    /// <summary>The replica's state_dict (float tensors as float32, integer buffers as int64).</summary>
    public async Task<List<TensorChunks.Received>> SaveStateAsync(CancellationToken cancel = default)
    {
        using var call = _client.SaveState(new SaveStateRequest(), Options(cancel));
        var assembler = new TensorChunks.Assembler();
        var tensors = new List<TensorChunks.Received>();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancel))
        {
            if (assembler.Add(chunk) is { } tensor) tensors.Add(tensor);
        }
        assembler.Complete();
        return tensors;
    }

    /// <summary>Replaces the replica's state with these tensors; returns (tensors loaded, parameter checksum).</summary>
    public async Task<LoadStateReply> LoadStateAsync(IEnumerable<NamedBytes> state, CancellationToken cancel = default)
    {
        using var call = _client.LoadState(Options(cancel));
        return await SendAsync(call, state.SelectMany(WireMapping.Chunks), cancel);
    }

    /// <summary>Writes a duplex call's request stream, completes it, and reads the one tensor the worker answers with.</summary>
    private static async Task<TensorChunks.Received> ExchangeAsync<TRequest>(AsyncDuplexStreamingCall<TRequest, TensorChunk> call, IEnumerable<TRequest> messages,
        CancellationToken cancel)
    {
        foreach (var message in messages) await call.RequestStream.WriteAsync(message, cancel);
        await call.RequestStream.CompleteAsync();
        return await TensorChunks.ReadOneAsync(call.ResponseStream, cancel);
    }

    /// <summary>
    /// Writes a client stream, completes it and returns the worker's reply. A worker that refuses a call before it has
    /// read the whole request (an error found in the header, a call before Join) ends the call while the client still
    /// writes: its status is the news, not the write that then failed (Cancelled under CPU load).
    /// </summary>
    private static async Task<TResponse> SendAsync<TRequest, TResponse>(AsyncClientStreamingCall<TRequest, TResponse> call, IEnumerable<TRequest> messages,
        CancellationToken cancel)
    {
        try
        {
            foreach (var message in messages) await call.RequestStream.WriteAsync(message, cancel);
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException && !cancel.IsCancellationRequested)
        {
            await call.ResponseAsync; // throws the worker's status
            throw;
        }
        return await call.ResponseAsync;
    }

    public GrpcChannel Channel => _channel;

    public void Dispose() => _channel.Dispose();
}
