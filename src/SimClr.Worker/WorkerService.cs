using Grpc.Core;
using Microsoft.Extensions.Logging;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Wire;
using static SimClr.Worker.RequestStreams;
using static TorchSharp.torch;

namespace SimClr.Worker;

/// <summary>
/// The Worker service of protos/simclr.proto: checks every incoming message, maps it to Core (<see cref="WireMapping"/>),
/// and awaits the replica's session (<see cref="ReplicaSession"/>) on the process's one <see cref="TorchThread"/>. One
/// replica per worker process. The replica's times in a call go out beside the answer (<see cref="TimesTrailerInterceptor"/>).
/// </summary>
[BindServiceMethod(typeof(WorkerService), nameof(Bind))]
public sealed class WorkerService(TorchThread torch, WorkerOptions options, RingPeers peers, DeviceCommunicators collective, ILogger<WorkerService> log) : Protocol.Worker.WorkerBase, IAsyncDisposable
{
    private readonly Lock _gate = new();
    private JoinedRun? _run;

    /// <summary>gRPC's own binding, turned off: <see cref="UndecodableIsInvalid{TService}"/> binds the methods.</summary>
    public static void Bind(ServiceBinderBase binder, WorkerService service)
    {
    }

    public override async Task<JoinReply> Join(JoinRequest request, ServerCallContext context)
    {
        if (request.Version != ProtocolVersion._1)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"protocol version {(int)request.Version} is not spoken here (this worker speaks version {(int)ProtocolVersion._1})"));
        var config = ReadConfig(request);
        var data = CheckRun(config, request.Data);
        var own = data.SharedStorage ? await OpenSharedData(config, data, context.CancellationToken) : null;
        ReplicaSession session;
        try
        {
            // identical on every worker; the weights arrive by LoadState
            session = await torch.RunAsync(() => new ReplicaSession(ReplicaFactory.Build(config, data.Channels, data.Mean.ToArray(), data.Std.ToArray(),
                new Device(options.Device), data.Classes, loadPretrained: false)));
        }
        catch
        {
            if (own is not null) await torch.RunAsync(own.Dispose);
            throw;
        }
        lock (_gate)
        {
            var old = _run;
            _run = new JoinedRun(session, data.Channels, data.Height, data.Width, own);
            if (old is not null) _ = torch.RunAsync(old.Dispose);
        }
        log.LogInformation("joined run {Run}: {Parameters} parameters on {Device}", request.RunId, session.ParameterCount, options.Device);
        var (library, problem) = collective.Support(session.Replica.Device);
        return new JoinReply
        {
            Version = ProtocolVersion._1,
            WorkerId = options.WorkerId,
            Device = options.Device,
            Threads = get_num_threads(),
            DeviceCollective = library ?? "",
            DeviceCollectiveProblem = problem,
        };
    }

    /// <summary>The run config a Join sends, checked, for the model its hash names.</summary>
    private static RunConfig ReadConfig(JoinRequest request)
    {
        RunConfig config;
        try
        {
            config = System.Text.Json.JsonSerializer.Deserialize<RunConfig>(request.ConfigJson, RunConfigLoader.Json) ?? throw new ConfigException("empty config");
            var problems = config.Problems();
            if (problems.Count > 0) throw new ConfigException(string.Join("; ", problems));
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ConfigException)
        {
            throw Invalid($"config_json: {e.Message}");
        }
        if (RunConfigLoader.ModelHash(config) != request.ModelHash)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "model_hash does not match the config sent: coordinator and worker disagree on the model"));
        return config;
    }

    /// <summary>data.sharedStorage: opens the run's data set here (from <see cref="WorkerOptions.DataRoot"/>, else the
    /// config's root) and checks it holds the coordinator's training images (count and fingerprint), so that an index
    /// means the same image on both sides. Any failure refuses the Join with FailedPrecondition saying what to do.</summary>
    private async Task<Core.Stages.PreparedStage> OpenSharedData(RunConfig config, DataShape shape, CancellationToken cancel)
    {
        string where = options.DataRoot ?? config.Data.Root ?? "its default folder";
        Core.Stages.PreparedStage own;
        try
        {
            own = await torch.RunAsync(() => Core.Stages.PreparedStage.OpenSharedAsync(config, options.DataRoot, m => log.LogInformation("{Message}", m), cancel)
                .GetAwaiter().GetResult(), cancel);
        }
        catch (Core.Data.DataSetException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"data.sharedStorage: this worker cannot open data set {config.Data.Name} at {where}: {e.Message}. Every worker needs the data on a path it can read (simclr worker --data-root <its mount of the shared copy>)"));
        }
        var train = own.Train;
        if (train.Channels != shape.Channels || train.Height != shape.Height || train.Width != shape.Width)
        {
            await torch.RunAsync(own.Dispose);
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"data.sharedStorage: this worker's copy of {config.Data.Name} at {where} holds {train.Channels}x{train.Height}x{train.Width} images, the coordinator's {shape.Channels}x{shape.Height}x{shape.Width}"));
        }
        string fingerprint = await torch.RunAsync(train.Fingerprint, cancel);
        if (train.Count != shape.Count || fingerprint != shape.Fingerprint)
        {
            await torch.RunAsync(own.Dispose);
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"data.sharedStorage: this worker's copy of {config.Data.Name} at {where} ({train.Count} images, fingerprint {fingerprint}) is not the coordinator's "
                + $"({shape.Count} images, fingerprint {shape.Fingerprint}); point --data-root at the same shared copy the coordinator reads"));
        }
        log.LogInformation("opened {Name} at {Where} for shared storage: {Count} training images, fingerprint {Fingerprint}", config.Data.Name, where, train.Count, fingerprint);
        return own;
    }

    /// <summary>What a Join asks this worker to run, checked: images it can take, and a stage that runs on workers.</summary>
    private static DataShape CheckRun(RunConfig config, DataShape? data)
    {
        if (data is null) throw Invalid("data: missing");
        if (data.Channels < 1 || data.Height < 1 || data.Width < 1 || data.Mean.Count != data.Channels || data.Std.Count != data.Channels || data.Std.Any(s => !(s > 0)))
            throw Invalid($"data: channels {data.Channels}, {data.Height}x{data.Width}, {data.Mean.Count} means and {data.Std.Count} stds do not describe images");
        if (config.Stage is not (Stage.Pretrain or Stage.Finetune or Stage.Supervised))
            throw Invalid($"stage {config.Stage} does not run on workers (pretrain, finetune and supervised do)");
        if (config.Stage != Stage.Pretrain && data.Classes < 2) throw Invalid($"data: {data.Classes} classes; a classifier needs at least 2");
        if (data.SharedStorage && (data.Count < 1 || data.Fingerprint.Length == 0))
            throw Invalid($"data: shared_storage needs the count ({data.Count}) and fingerprint ('{data.Fingerprint}') of the images shards index");
        return data;
    }

    public override async Task Forward(IAsyncStreamReader<ForwardMessage> requestStream, IServerStreamWriter<TensorChunk> responseStream, ServerCallContext context)
    {
        var run = Joined();
        var (shard, images) = await ReadHeaderThenTensor(requestStream, m => m.Shard, m => m.Images, m => m.PartCase,
            "Forward", "the shard header, then the images (none with shared_storage)", context, tensorOptional: true, expect: (shard, images) =>
            {
                long rows = shard.Indices.Count;
                if (shard.SharedStorage) throw Invalid("a shared_storage shard carries no images: the worker reads its rows itself");
                if (images.Dtype != DType.Uint8 || !images.Shape.SequenceEqual([rows, run.Channels, run.Height, run.Width]))
                    throw Invalid($"images: {images.Dtype} [{string.Join(", ", images.Shape)}] for {rows} rows; expected uint8 [{rows}, {run.Channels}, {run.Height}, {run.Width}]");
            });
        CheckShard(shard);
        if (shard.SharedStorage)
        {
            if (run.Data is null)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, "a shard without images, but this worker joined without data.sharedStorage: it has no data set to read rows from"));
            if (images is not null) throw Invalid("a shared_storage shard carries no images: the worker reads its rows itself");
            if (shard.Indices.Any(i => i >= run.Data.Train.Count))
                throw Invalid($"indices: {shard.Indices.Max()} is past this run's {run.Data.Train.Count} training images");
        }
        else if (images is null)
        {
            throw Invalid("Forward needs the shard header, then the images (none only with shared_storage)");
        }
        var work = WireMapping.ToCore(shard, images);
        var (z, times) = await torch.RunAsync(() => run.Session.Forward(work, toHost: true, run.Data?.Train), context.CancellationToken);
        TimesTrailerInterceptor.Report(context, times);
        foreach (var chunk in WireMapping.Chunks("z", z)) await responseStream.WriteAsync(chunk);
    }

    private static void CheckShard(ShardHeader shard)
    {
        long rows = shard.Indices.Count;
        if (shard.Views.Count != rows) throw Invalid($"{shard.Views.Count} views for {rows} indices");
        if (shard.Views.Any(v => v is < 0 or > 1) || shard.Indices.Any(i => i < 0)) throw Invalid("views must be 0 or 1 and indices >= 0");
        if (rows == 0) throw Invalid("an empty shard");
        if (shard.ChunkSizes.Count > 0 && (shard.ChunkSizes.Any(c => c < 1) || shard.ChunkSizes.Sum(c => (long)c) != rows))
            throw Invalid($"chunk_sizes [{string.Join(", ", shard.ChunkSizes)}] do not split {rows} rows");
    }

    public override async Task Backward(IAsyncStreamReader<TensorChunk> requestStream, IServerStreamWriter<TensorChunk> responseStream, ServerCallContext context)
    {
        var session = Joined().Session;
        var block = ProjectionGradient(session, await ReceiveOne(requestStream, context, (dz, _) => CheckProjectionGradient(session, dz.Dtype, dz.Shape)));
        var (flat, times) = await Precondition(() => torch.RunAsync(() => session.Backward(block, returnGradient: true), context.CancellationToken));
        TimesTrailerInterceptor.Report(context, times);
        foreach (var chunk in WireMapping.Chunks("gradient", flat!)) await responseStream.WriteAsync(chunk);
    }

    public override async Task<ReduceReply> BackwardReduce(IAsyncStreamReader<BackwardReduceMessage> requestStream, ServerCallContext context)
    {
        var session = Joined().Session;
        var (ring, dz) = await ReadHeaderThenTensor(requestStream, m => m.Ring, m => m.Dz, m => m.PartCase,
            "BackwardReduce", "the ring, then dL/dz", context, expect: (_, dz) => CheckProjectionGradient(session, dz.Dtype, dz.Shape));
        CheckRing(ring);
        var block = ProjectionGradient(session, dz);
        if (WireMapping.CommunicatorOf(ring) is { } communicator) return await ReduceOnDevice(session, ring, communicator, block, context);
        var buckets = session.Replica.Buckets((long)Math.Min(ring.BucketBytes, long.MaxValue));
        var (result, times) = await RingBrokenIsAborted(ring, context, () => peers.AllReduceAlongsideAsync(ring, [.. buckets.Select(b => b.Ring)],
            ready => Precondition(() => torch.RunAsync(() => session.BackwardInBuckets(block, buckets, ready), context.CancellationToken)), context.CancellationToken));
        session.KeepRingSum(result.Sum);
        TimesTrailerInterceptor.Report(context, times);
        return new ReduceReply { NonFinite = result.NonFinite, BytesSent = result.BytesSent };
    }

    /// <summary>BackwardReduce over the devices' collective: joins (or keeps) the plan's communicator and sums each bucket
    /// on the device as backward finishes it. The coordinator cancelling the call aborts the communicator, so that the torch
    /// thread stops waiting for a rank that is gone; a communicator that fails on its own (a peer gone) is Aborted with the
    /// ring's trailer, as a broken ring is.</summary>
    private async Task<ReduceReply> ReduceOnDevice(ReplicaSession session, RingSpec ring, CommunicatorPlan communicator, FloatBlock block, ServerCallContext context)
    {
        var buckets = session.Replica.Buckets((long)Math.Min(ring.BucketBytes, long.MaxValue));
        using var abort = context.CancellationToken.Register(collective.Abort);
        Timed<long> result;
        try
        {
            result = await Precondition(() => torch.RunAsync(() =>
                session.BackwardReduceOnDevice(block, buckets, collective.Use(communicator, (int)ring.Rank, session.Replica.Device, context.CancellationToken)), context.CancellationToken));
        }
        catch (DeviceCollectiveUnavailableException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
        catch (DeviceCollectiveException e) when (!context.CancellationToken.IsCancellationRequested)
        {
            collective.Abort();
            log.LogWarning("communicator {Id} broke: {Reason}", communicator.Short, e.Message);
            throw new RpcException(new Status(StatusCode.Aborted, $"communicator: {e.Message}"), new Metadata { { RingTrailer.Key, RingTrailer.Broken } });
        }
        TimesTrailerInterceptor.Report(context, result.Times);
        return new ReduceReply { NonFinite = result.Value };
    }

    public override async Task<CommunicatorIdReply> NewCommunicatorId(CommunicatorIdRequest request, ServerCallContext context)
    {
        try
        {
            byte[] id = await Task.Run(() => collective.NewId(new Device(options.Device)), context.CancellationToken);
            return new CommunicatorIdReply { UniqueId = Google.Protobuf.ByteString.CopyFrom(id) };
        }
        catch (DeviceCollectiveUnavailableException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
    }

    private static void CheckRing(RingSpec ring)
    {
        if (ring.RingId == 0) throw Invalid("ring: ring_id 0 is not an id");
        if (!ring.CommunicatorId.IsEmpty)
        {
            if (ring.CommunicatorId.Length > WireLimits.MaxCommunicatorIdBytes)
                throw Invalid($"ring: communicator_id of {ring.CommunicatorId.Length} bytes (at most {WireLimits.MaxCommunicatorIdBytes})");
            if (ring.CommunicatorRanks is < 1 or > 4096 || ring.Rank >= ring.CommunicatorRanks)
                throw Invalid($"ring: rank {ring.Rank} of a communicator of {ring.CommunicatorRanks} ranks");
            if (ring.Peers.Count > 0) throw Invalid("ring: a communicator's reduction has no peers (the collective library connects the ranks)");
            return;
        }
        if (ring.Peers.Count is < 1 or > 4096 || ring.Rank >= ring.Peers.Count)
            throw Invalid($"ring: rank {ring.Rank} of {ring.Peers.Count} peers");
        foreach (string peer in ring.Peers)
        {
            if (!Uri.TryCreate(peer, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                throw Invalid($"ring: peer '{peer}' is not an http(s) address");
        }
        if (WireMapping.ToCore(ring.Precision) is null) throw Invalid($"ring: precision {ring.Precision}");
        if (ring.PieceElements > RingAllReduce.MaxPieceElements) throw Invalid($"ring: piece_elements {ring.PieceElements} (at most {RingAllReduce.MaxPieceElements})");
    }

    /// <summary>A ring that broke while the coordinator had not cancelled the call (a peer failed, not this worker) is
    /// Aborted with the trailer that says so (<see cref="RingTrailer"/>).</summary>
    private async Task<T> RingBrokenIsAborted<T>(RingSpec ring, ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (e is RingBrokenException or OperationCanceledException && !context.CancellationToken.IsCancellationRequested)
        {
            log.LogWarning("ring {Ring:x} broke: {Reason}", ring.RingId, e.Message);
            throw new RpcException(new Status(StatusCode.Aborted, $"ring: {e.Message}"), new Metadata { { RingTrailer.Key, RingTrailer.Broken } });
        }
    }

    /// <summary>dL/dz as received, checked against the last Forward's projections.</summary>
    private static FloatBlock ProjectionGradient(ReplicaSession session, TensorChunks.Received gradient)
    {
        CheckProjectionGradient(session, gradient.DType, gradient.Shape);
        return WireMapping.ToFloatBlock(gradient);
    }

    /// <summary>dL/dz's dtype and shape (as received, or declared by its header before its bytes are allocated), checked
    /// against the last Forward's projections.</summary>
    private static void CheckProjectionGradient(ReplicaSession session, DType dtype, IReadOnlyList<long> shape)
    {
        var expected = session.PendingProjections ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "Backward needs a Forward first"));
        if (dtype != DType.Float32 || !shape.SequenceEqual(expected))
            throw Invalid($"dL/dz: {dtype} [{string.Join(", ", shape)}], expected float32 [{string.Join(", ", expected)}]");
    }

    /// <summary>A session call refused as out of order (<see cref="InvalidOperationException"/>) is FailedPrecondition.</summary>
    private static async Task<T> Precondition<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
    }

    public override async Task<ApplyStepReply> ApplyStep(IAsyncStreamReader<ApplyStepMessage> requestStream, ServerCallContext context)
    {
        var session = Joined().Session;
        var (step, gradient) = await ReadHeaderThenTensor(requestStream, m => m.Step, m => m.Gradient, m => m.PartCase,
            "ApplyStep", "the step header, then the gradient (none with reduced)", context, tensorOptional: true, expect: (step, gradient) =>
            {
                if (step.Reduced) throw Invalid("a reduced ApplyStep carries no gradient: the worker applies its ring's sum");
                CheckStepGradient(session, gradient.Dtype, gradient.Shape);
            });
        if (!double.IsFinite(step.LearningRate) || step.LearningRate < 0) throw Invalid($"learning rate {step.LearningRate}");
        StepGradient source;
        if (step.Reduced)
        {
            if (gradient is not null) throw Invalid("a reduced ApplyStep carries no gradient: the worker applies its ring's sum");
            source = StepGradient.Ring;
        }
        else
        {
            if (gradient is null) throw Invalid("ApplyStep needs the step header, then the gradient");
            CheckStepGradient(session, gradient.DType, gradient.Shape);
            source = StepGradient.Sent(gradient.Data);
        }
        var (checksum, times) = await Precondition(() => torch.RunAsync(() => session.Apply(step.LearningRate, source, WireMapping.AgreementOf(step.Agreement)), context.CancellationToken));
        TimesTrailerInterceptor.Report(context, times);
        return new ApplyStepReply { Step = step.Step, Checksum = checksum };
    }

    /// <summary>A sent gradient's dtype and shape (as received, or declared by its header): float32, one value a parameter.</summary>
    private static void CheckStepGradient(ReplicaSession session, DType dtype, IReadOnlyList<long> shape)
    {
        if (dtype != DType.Float32 || shape.Count != 1 || shape[0] != session.ParameterCount)
            throw Invalid($"gradient: {dtype} [{string.Join(", ", shape)}], expected float32 [{session.ParameterCount}]");
    }

    public override async Task SaveState(SaveStateRequest request, IServerStreamWriter<TensorChunk> responseStream, ServerCallContext context)
    {
        var session = Joined().Session;
        var state = await torch.RunAsync(session.SaveState, context.CancellationToken);
        foreach (var chunk in state.SelectMany(WireMapping.Chunks)) await responseStream.WriteAsync(chunk);
    }

    public override async Task<LoadStateReply> LoadState(IAsyncStreamReader<TensorChunk> requestStream, ServerCallContext context)
    {
        var session = Joined().Session;
        // each tensor is checked by its header, before its bytes arrive: a name this model has, its dtype and shape,
        // once; so a call holds at most the model's state (StateBytes), however many tensors a client sends
        var names = new HashSet<string>(StringComparer.Ordinal);
        long declared = 0;
        var assembler = new TensorChunks.Assembler(check: (header, bytes) =>
        {
            if (!session.StateLayout.TryGetValue(header.Name, out var expected))
                throw Invalid($"state tensor {header.Name}: this model's state has no tensor of that name");
            var dtype = WireMapping.StateDType(expected.IsFloat);
            if (header.Dtype != dtype || !header.Shape.SequenceEqual(expected.Shape))
                throw Invalid($"state tensor {header.Name}: {header.Dtype} of shape [{string.Join(", ", header.Shape)}]; this model's is {dtype} of shape [{string.Join(", ", expected.Shape)}]");
            if (!names.Add(header.Name)) throw Invalid($"state tensor {header.Name} sent twice");
            declared += bytes;
            if (declared > session.StateBytes)
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"state: {declared} bytes, more than this model's whole state ({session.StateBytes})"));
        });
        var state = new List<NamedBytes>();
        await foreach (var chunk in requestStream.ReadAllAsync(context.CancellationToken))
        {
            if (Guard(() => assembler.Add(chunk)) is not { } tensor) continue;
            state.Add(WireMapping.ToNamedBytes(tensor));
        }
        Guard(assembler.Complete);
        string checksum;
        try
        {
            checksum = await torch.RunAsync(() => session.LoadState(state), context.CancellationToken);
        }
        catch (InvalidDataException e)
        {
            throw Invalid($"state: {e.Message}"); // checked before anything changed: the replica is as it was
        }
        log.LogInformation("loaded state: {Tensors} tensors, checksum {Checksum}", state.Count, checksum);
        return new LoadStateReply { Tensors = (uint)state.Count, Checksum = checksum };
    }

    private JoinedRun Joined()
    {
        lock (_gate) return _run ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "this worker has not joined a run: call Join first"));
    }

    /// <summary>Disposes the joined replica on the torch thread (the host calls it before it stops the thread).</summary>
    public async ValueTask DisposeAsync()
    {
        JoinedRun? run;
        lock (_gate)
        {
            run = _run;
            _run = null;
        }
        if (run is not null) await torch.RunAsync(run.Dispose);
        await torch.RunAsync(collective.Dispose);
    }
}
