using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using SimClr.Coordinator;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Protocol;
using SimClr.Worker;

namespace SimClr.Distributed.Tests;

/// <summary>
/// What a careless or hostile client found at a worker's wire (issue 14), each tried against a real in-process worker
/// over gRPC: undecodable messages, tensors too large to allocate, idle streams, unbounded state, connections
/// without a token. Every one must be answered with a status that says what was wrong, logged in one line.
/// </summary>
public sealed class HostileWireTests : IAsyncLifetime
{
    private static readonly RunConfig Config = new()
    {
        Seed = 2,
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
        Optimizer = new OptimizerOptions { Kind = OptimizerKind.Lars, BaseLearningRate = 0.5, Scaling = LearningRateScaling.None },
        Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 4),
    };

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private TrainTestSplit _data = null!;

    public async Task InitializeAsync() => _data = await Config.Data.LoadAsync();

    public Task DisposeAsync()
    {
        _data.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Every log entry of a worker: level, category, message, and whether it carried an exception.</summary>
    private sealed class Captured : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Category, string Message, Exception? Error)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(Captured owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((logLevel, category, formatter(state, exception), exception));
        }
    }

    private static async Task<WorkerHost> Start(Captured log, WorkerOptions? options = null) =>
        await WorkerHost.StartAsync(options ?? new WorkerOptions(), logging => logging.AddProvider(log).SetMinimumLevel(LogLevel.Trace));

    private static GrpcChannel Open(Uri address) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        MaxSendMessageSize = WireLimits.MaxMessageBytes,
        MaxReceiveMessageSize = WireLimits.MaxMessageBytes,
    });

    private static Method<byte[], byte[]> RawMethod(MethodType type, string service, string name) => new(type, service, name, Raw, Raw);

    private static CallOptions Deadline(double seconds = 20) => new(deadline: DateTime.UtcNow.AddSeconds(seconds));

    /// <summary>The status a call ends with (OK when it succeeded).</summary>
    private static async Task<Status> StatusOf(Func<Task> call)
    {
        try
        {
            await call();
            return Status.DefaultSuccess;
        }
        catch (RpcException e)
        {
            return e.Status;
        }
    }

    /// <summary>Sends <paramref name="messages"/> (raw bytes, one gRPC message each) on a client- or duplex-streaming call and returns its status.</summary>
    private static Task<Status> Stream(CallInvoker invoker, MethodType type, string service, string name, params byte[][] messages) => StatusOf(async () =>
    {
        var method = RawMethod(type, service, name);
        if (type == MethodType.ClientStreaming)
        {
            using var call = invoker.AsyncClientStreamingCall(method, null, Deadline());
            await Send(call.RequestStream, messages);
            await call.ResponseAsync;
        }
        else
        {
            using var call = invoker.AsyncDuplexStreamingCall(method, null, Deadline());
            await Send(call.RequestStream, messages);
            while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
        }
    });

    private static async Task Send(IClientStreamWriter<byte[]> stream, byte[][] messages)
    {
        try
        {
            foreach (var m in messages) await stream.WriteAsync(m);
            await stream.CompleteAsync();
        }
        catch (RpcException)
        {
            // the worker answered before the stream ended: its status is read from the response
        }
        catch (InvalidOperationException)
        {
        }
    }

    // field 1 with wire type 7, which protobuf does not have: no message of protos/simclr.proto decodes it
    private static readonly byte[] Undecodable = [0x0F, 0xFF, 0xFF];

    [Fact]
    public async Task Undecodable_messages_and_a_tensor_too_large_to_allocate_are_refused_with_a_status_and_logged_in_one_line()
    {
        var log = new Captured();
        await using var host = await Start(log);
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var channel = Open(host.Address);
        var invoker = channel.CreateCallInvoker();
        var errors = new StringWriter();
        var console = Console.Error;
        Console.SetError(errors);
        var statuses = new Dictionary<string, Status>();
        try
        {
            statuses["Join"] = await StatusOf(async () => await invoker.AsyncUnaryCall(RawMethod(MethodType.Unary, "simclr.v1.Worker", "Join"), null, Deadline(), Undecodable));
            statuses["SaveState"] = await StatusOf(async () =>
            {
                using var call = invoker.AsyncServerStreamingCall(RawMethod(MethodType.ServerStreaming, "simclr.v1.Worker", "SaveState"), null, Deadline(), Undecodable);
                while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
            });
            statuses["Peer.Ring"] = await Stream(invoker, MethodType.ClientStreaming, "simclr.v1.Peer", "Ring", Undecodable);
            statuses["LoadState"] = await Stream(invoker, MethodType.ClientStreaming, "simclr.v1.Worker", "LoadState", Undecodable);
            statuses["Forward"] = await Stream(invoker, MethodType.DuplexStreaming, "simclr.v1.Worker", "Forward", Undecodable);

            // a tensor of 2^31 - 1 bytes: as many as a byte count may say, more than one array holds
            var huge = new TensorChunk { Index = 0, Header = new TensorHeader { Name = "model.huge", Dtype = DType.Uint8, Chunks = 1u << 10 } };
            huge.Header.Shape.Add(int.MaxValue);
            statuses["LoadState 2^31-1 bytes"] = await Stream(invoker, MethodType.ClientStreaming, "simclr.v1.Worker", "LoadState", Google.Protobuf.MessageExtensions.ToByteArray(huge));
        }
        finally
        {
            Console.SetError(console);
        }
        Assert.True(statuses.Values.All(s => s.StatusCode is StatusCode.InvalidArgument or StatusCode.ResourceExhausted),
            string.Join("; ", statuses.Select(kv => $"{kv.Key}: {kv.Value.StatusCode} ({kv.Value.Detail})")));
        Assert.Equal("", errors.ToString());
        var logged = log.Entries.ToList();
        Assert.All(logged, e => Assert.True(e.Error is null && !e.Message.Contains('\n', StringComparison.Ordinal), $"{e.Category}: {e.Message} {e.Error}"));
        foreach (string call in new[] { "Worker/Join", "Worker/SaveState", "Peer/Ring", "Worker/LoadState", "Worker/Forward" })
            Assert.Single(logged, e => e.Level == LogLevel.Warning && e.Message.Contains(call, StringComparison.Ordinal));

        // and the worker is unharmed
        await WorkerPool.WaitHealthyAsync(new WorkerClient(host.Address, TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(10));
        var state = await joined[0].SaveStateAsync(default);
        Assert.NotEmpty(state);
        joined[0].Dispose();
    }

    [Fact]
    public async Task A_stream_that_goes_quiet_is_ended_after_the_per_message_timeout_and_frees_the_worker_for_the_next_call()
    {
        var log = new Captured();
        await using var host = await Start(log, new WorkerOptions { MessageSeconds = 1, BusySeconds = 8 });
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var channel = Open(host.Address);
        var raw = new Protocol.Worker.WorkerClient(channel);

        // a Forward that sends its headers and no message ...
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var quiet = raw.Forward(Deadline(60)))
        {
            var status = await StatusOf(async () =>
            {
                while (await quiet.ResponseStream.MoveNext(CancellationToken.None)) { }
            });
            Assert.True(status.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Cancelled, $"{status.StatusCode} ({status.Detail})");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6), $"the quiet Forward held the worker for {clock.Elapsed.TotalSeconds:0.0} s");
        }
        Assert.NotEmpty(await joined[0].SaveStateAsync(default)); // ... no longer holds the slot

        // a LoadState that sends one chunk of two, then nothing: the next call still gets in well before BusySeconds
        var held = (await joined[0].SaveStateAsync(default)).First(t => t.IsFloat); // a tensor the worker's model has: its header is accepted
        using var half = raw.LoadState(Deadline(60));
        var header = new TensorHeader { Name = held.Name, Dtype = DType.Float32, Chunks = 2 };
        header.Shape.Add(held.Shape);
        await half.RequestStream.WriteAsync(new TensorChunk { Header = header, Index = 0, Data = Google.Protobuf.ByteString.CopyFrom(new byte[4]) });
        clock.Restart();
        Assert.NotEmpty(await joined[0].SaveStateAsync(default));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6), $"SaveState waited {clock.Elapsed.TotalSeconds:0.0} s behind a quiet LoadState");
        var ended = await StatusOf(() => half.ResponseAsync);
        Assert.True(ended.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Cancelled, $"{ended.StatusCode} ({ended.Detail})");
        joined[0].Dispose();
    }

    [Fact]
    public async Task LoadState_refuses_an_unknown_misshapen_or_repeated_tensor_at_its_header_before_its_bytes_arrive()
    {
        var log = new Captured();
        await using var host = await Start(log);
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var channel = Open(host.Address);
        var raw = new Protocol.Worker.WorkerClient(channel);
        var state = await joined[0].SaveStateAsync(default);
        var first = state.First(t => t.IsFloat && t.Shape.Length > 0);

        // the first chunk of a tensor declared in 2; the stream stays open, so the worker must answer from the header
        static TensorChunk Header(string name, DType dtype, long[] shape)
        {
            var header = new TensorHeader { Name = name, Dtype = dtype, Chunks = 2 };
            header.Shape.Add(shape);
            return new TensorChunk { Header = header, Index = 0, Data = Google.Protobuf.ByteString.CopyFrom(new byte[4]) };
        }
        async Task<Status> Refused(string what, params TensorChunk[] chunks)
        {
            using var call = raw.LoadState(Deadline(60));
            foreach (var chunk in chunks) await call.RequestStream.WriteAsync(chunk);
            var answered = await Task.WhenAny(call.ResponseAsync, Task.Delay(TimeSpan.FromSeconds(10)));
            Assert.True(answered == call.ResponseAsync, $"{what}: no answer while the stream was open");
            return await StatusOf(() => call.ResponseAsync);
        }

        var unknown = await Refused("an unknown name", Header("model.not_a_tensor", DType.Float32, [1024 * 1024]));
        var misshapen = await Refused("a wrong shape", Header(first.Name, DType.Float32, [first.Shape[0] + 1, .. first.Shape[1..]]));
        var wrongType = await Refused("a wrong dtype", Header(first.Name, DType.Float64, first.Shape));
        var repeated = await Refused("a tensor sent twice",
            [.. TensorChunks.Split(first.Name, DType.Float32, first.Shape, first.Data), Header(first.Name, DType.Float32, first.Shape)]);
        foreach (var (what, status) in new[] { ("unknown", unknown), ("misshapen", misshapen), ("wrong dtype", wrongType), ("repeated", repeated) })
            Assert.True(status.StatusCode is StatusCode.InvalidArgument or StatusCode.ResourceExhausted, $"{what}: {status.StatusCode} ({status.Detail})");
        Assert.Contains("no tensor of that name", unknown.Detail, StringComparison.Ordinal);
        Assert.Contains("sent twice", repeated.Detail, StringComparison.Ordinal);

        // the whole state, as the coordinator sends it, still loads
        Assert.False(string.IsNullOrEmpty(await joined[0].LoadStateAsync(state, default)));
        joined[0].Dispose();
    }

    [Fact]
    public async Task Idle_health_watches_without_the_token_on_many_connections_do_not_lock_out_the_coordinator_that_has_it()
    {
        const string token = "0123456789abcdef0123456789abcdef";
        var log = new Captured();
        await using var host = await Start(log, new WorkerOptions { Token = token });
        // a stranger opens twice as many connections as a worker once accepted in all, each holding a health Watch open
        var strangers = new List<(GrpcChannel Channel, AsyncServerStreamingCall<Grpc.Health.V1.HealthCheckResponse> Watch)>();
        int watching = 0;
        try
        {
            for (int i = 0; i < 2 * WireLimits.MaxConnections; i++)
            {
                var channel = WireChannel.Open(host.Address);
                var watch = new Grpc.Health.V1.Health.HealthClient(channel).Watch(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(60));
                strangers.Add((channel, watch));
                try
                {
                    if (await watch.ResponseStream.MoveNext(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token)) watching++;
                }
                catch (Exception e) when (e is RpcException or OperationCanceledException)
                {
                }
            }
            Assert.True(watching >= WireLimits.MaxConnections, $"only {watching} watches opened");

            // the coordinator, with the token, still gets in and is served
            var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), token: token);
            Assert.NotEmpty(await joined[0].SaveStateAsync(default));
            joined[0].Dispose();
        }
        finally
        {
            foreach (var (channel, watch) in strangers)
            {
                watch.Dispose();
                channel.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_worker_logs_its_join_in_one_console_line_and_names_the_protocol_version_it_speaks_by_number()
    {
        var written = new StringWriter();
        var console = TextWriter.Synchronized(written);
        var stdout = Console.Out;
        Console.SetOut(console); // the console logger takes its writer when it starts
        string text;
        WorkerHost host;
        try
        {
            host = await WorkerHost.StartAsync(new WorkerOptions()); // as `simclr worker` starts it: no logging given
        }
        finally
        {
            Console.SetOut(stdout);
        }
        await using (host)
        {
            var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
            joined[0].Dispose();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            do
            {
                await Task.Delay(100);
                lock (console) text = written.ToString();
            }
            while (!text.Contains("joined run", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(10));
            Assert.Single(text.Split('\n'), line => line.Contains("joined run", StringComparison.Ordinal) && line.Contains("parameters on cpu", StringComparison.Ordinal));

            using var client = new WorkerClient(host.Address, TimeSpan.FromSeconds(30));
            var refused = await Assert.ThrowsAsync<RpcException>(() => client.JoinAsync(new JoinRequest { Version = (ProtocolVersion)7 }));
            Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
            Assert.Contains("protocol version 7", refused.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("speaks version 1", refused.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Forward_and_ApplyStep_refuse_a_tensor_of_the_wrong_shape_at_its_header_before_its_bytes_arrive()
    {
        var log = new Captured();
        await using var host = await Start(log);
        var joined = await WorkerPool.JoinAsync([host.Address], Config, _data.Train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var channel = Open(host.Address);
        var raw = new Protocol.Worker.WorkerClient(channel);
        var shard = new ShardHeader { Step = 0 };
        shard.Indices.AddRange([0, 1, 2, 3]);
        shard.Views.AddRange([0, 0, 0, 0]);

        // the first chunk of a tensor far larger than the call needs; the stream stays open
        static TensorChunk Header(string name, DType dtype, long[] shape)
        {
            long bytes = shape.Aggregate(1L, (n, d) => n * d) * TensorChunks.ElementSize(dtype);
            var header = new TensorHeader { Name = name, Dtype = dtype, Chunks = (uint)((bytes + WireLimits.ChunkBytes - 1) / WireLimits.ChunkBytes) };
            header.Shape.Add(shape);
            return new TensorChunk { Header = header, Index = 0, Data = Google.Protobuf.ByteString.CopyFrom(new byte[4]) };
        }
        static async Task<Status> Answered(string what, Task response)
        {
            var answered = await Task.WhenAny(response, Task.Delay(TimeSpan.FromSeconds(10)));
            Assert.True(answered == response, $"{what}: no answer while the stream was open");
            return await StatusOf(() => response);
        }

        Status forward;
        using (var call = raw.Forward(Deadline(60)))
        {
            await call.RequestStream.WriteAsync(new ForwardMessage { Shard = shard });
            await call.RequestStream.WriteAsync(new ForwardMessage { Images = Header("images", DType.Uint8, [4096, 3, 32, 32]) }); // 4 rows sent
            forward = await Answered("Forward", call.ResponseStream.MoveNext(CancellationToken.None));
        }
        Status apply;
        using (var call = raw.ApplyStep(Deadline(60)))
        {
            await call.RequestStream.WriteAsync(new ApplyStepMessage { Step = new StepHeader { Step = 0, LearningRate = 0.1 } });
            await call.RequestStream.WriteAsync(new ApplyStepMessage { Gradient = Header("gradient", DType.Float32, [1 << 24]) });
            apply = await Answered("ApplyStep", call.ResponseAsync);
        }
        Assert.True(forward.StatusCode == StatusCode.InvalidArgument && forward.Detail.Contains("expected uint8 [4, 3, 32, 32]", StringComparison.Ordinal),
            $"Forward: {forward.StatusCode} ({forward.Detail})");
        Assert.True(apply.StatusCode == StatusCode.InvalidArgument && apply.Detail.Contains("gradient: Float32 [16777216]", StringComparison.Ordinal),
            $"ApplyStep: {apply.StatusCode} ({apply.Detail})");
        joined[0].Dispose();
    }
}
