using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SimClr.Coordinator;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Worker;

namespace SimClr.Distributed.Tests;

/// <summary>
/// Malformed calls at the worker's gRPC endpoints, built from valid ones by seeded mutations: random bytes in tensor
/// fields, wrong lengths and shapes, chunks out of order or missing or repeated, huge declared sizes, wrong dtypes,
/// messages in the wrong order. Each call must end within its deadline with a status (an error, or success where the
/// mutation left a valid message), never Internal/Unknown (an unhandled exception) and never a hang; afterwards the
/// worker still takes correct steps.
/// </summary>
public sealed class WorkerFuzzTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly RunConfig Config = new()
    {
        Seed = 2,
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
        Optimizer = new OptimizerOptions { Kind = OptimizerKind.Lars, BaseLearningRate = 0.5, Scaling = LearningRateScaling.None },
        Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 4),
    };

    private WorkerHost _host = null!;
    private TrainTestSplit _data = null!;

    public async Task InitializeAsync()
    {
        _data = await Config.Data.LoadAsync();
        _host = await WorkerHost.StartAsync(new WorkerOptions());
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _data.Dispose();
    }

    private static List<TensorChunk> Chunks(string name, DType dtype, long[] shape, byte[] data, int chunkBytes) =>
        TensorChunks.Split(name, dtype, shape, data, chunkBytes).Select(c => c.Clone()).ToList();

    /// <summary>One mutation of a valid chunk stream.</summary>
    private static List<TensorChunk> Mutate(List<TensorChunk> chunks, Random random)
    {
        var list = chunks.Select(c => c.Clone()).ToList();
        int target = random.Next(list.Count);
        switch (random.Next(11))
        {
            case 0: // random bytes in the data
                var bytes = list[target].Data.ToByteArray();
                random.NextBytes(bytes);
                list[target].Data = ByteString.CopyFrom(bytes);
                break;
            case 1: // data one byte short or long
                var resized = list[target].Data.ToByteArray();
                Array.Resize(ref resized, Math.Max(0, resized.Length + (random.Next(2) == 0 ? -1 : 1)));
                list[target].Data = ByteString.CopyFrom(resized);
                break;
            case 2: // chunks out of order
                if (list.Count > 1) (list[0], list[^1]) = (list[^1], list[0]);
                else list[0].Index = 1;
                break;
            case 3: // a chunk missing
                list.RemoveAt(target);
                break;
            case 4: // a chunk repeated
                list.Insert(target, list[target].Clone());
                break;
            case 5: // a huge declared shape
                list[0].Header.Shape[0] = random.Next(2) == 0 ? long.MaxValue / 2 : 1L << 40;
                break;
            case 6: // a negative or zero dimension
                list[0].Header.Shape[random.Next(list[0].Header.Shape.Count)] = random.Next(2) == 0 ? -3 : 0;
                break;
            case 7: // a wrong dtype
                list[0].Header.Dtype = (DType)random.Next(0, 9);
                break;
            case 8: // a wrong chunk count
                list[0].Header.Chunks = (uint)random.Next(0, 1000);
                break;
            case 9: // the header lost, or a second header
                if (random.Next(2) == 0) list[0].Header = null;
                else list[^1].Header = list[0].Header.Clone();
                break;
            default: // too many dimensions
                list[0].Header.Shape.Add(Enumerable.Repeat(1L, 9));
                break;
        }
        return list;
    }

    /// <summary>Writes the messages; when the worker has already answered (an error before the stream ended), stops
    /// writing, so the call's status is the worker's answer, read from the response.</summary>
    private static async Task Send<T>(IClientStreamWriter<T> stream, IEnumerable<T> messages)
    {
        try
        {
            foreach (var m in messages) await stream.WriteAsync(m);
            await stream.CompleteAsync();
        }
        catch (RpcException)
        {
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static CallOptions Deadline() => new(deadline: DateTime.UtcNow.AddSeconds(20));

    [Fact]
    public async Task Three_hundred_malformed_calls_are_each_answered_with_a_status_and_the_worker_still_trains()
    {
        var train = _data.Train;
        var joined = await WorkerPool.JoinAsync([_host.Address], Config, train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var channel = GrpcChannel.ForAddress(_host.Address, new GrpcChannelOptions { MaxSendMessageSize = WireLimits.MaxMessageBytes, MaxReceiveMessageSize = WireLimits.MaxMessageBytes });
        var raw = new Protocol.Worker.WorkerClient(channel);
        var peer = new Peer.PeerClient(channel);
        var random = new Random(20261128);
        var imageBytes = new byte[4 * 3 * 32 * 32];
        random.NextBytes(imageBytes);
        var statuses = new Dictionary<StatusCode, int>();
        int tried = 0;
        for (int i = 0; i < 300; i++)
        {
            StatusCode status;
            try
            {
                switch (random.Next(6))
                {
                    case 4:
                        {
                            var ring = new RingSpec
                            {
                                RingId = (ulong)random.Next(0, 3),
                                Rank = (uint)random.Next(0, 3),
                                Precision = (Protocol.ReducePrecision)random.Next(0, 5),
                                PieceElements = (uint)random.Next(0, 2) * (uint)random.Next(0, 1 << 21)
                            };
                            ring.Peers.AddRange(Enumerable.Range(0, random.Next(0, 3)).Select(_ => random.Next(3) switch { 0 => _host.Address.ToString(), 1 => "not a url", _ => "ftp://x" }));
                            if (random.Next(3) == 0) // an NCCL plan (this worker has none), well-formed or not
                            {
                                var id = new byte[random.Next(3) == 0 ? random.Next(0, 5000) : 128];
                                random.NextBytes(id);
                                ring.CommunicatorId = ByteString.CopyFrom(id);
                                ring.CommunicatorRanks = (uint)random.Next(0, 4);
                            }
                            using var call = raw.BackwardReduce(Deadline());
                            if (random.Next(6) != 0) await call.RequestStream.WriteAsync(new BackwardReduceMessage { Ring = ring });
                            foreach (var c in Mutate(Chunks("dz", DType.Float32, [4, 8], new byte[128], 32), random))
                                await call.RequestStream.WriteAsync(new BackwardReduceMessage { Dz = c });
                            await call.RequestStream.CompleteAsync();
                            await call.ResponseAsync;
                            break;
                        }
                    case 5:
                        {
                            // stray ring pieces from a "peer": ids, phases, dtypes and lengths at random (fewer than an inbox holds)
                            using var call = peer.Ring(Deadline());
                            ulong id = (ulong)random.Next(0, 3);
                            for (int p = random.Next(0, 8); p > 0; p--)
                            {
                                var data = new byte[random.Next(0, 64)];
                                random.NextBytes(data);
                                await call.RequestStream.WriteAsync(new Protocol.RingPiece
                                {
                                    RingId = random.Next(8) == 0 ? id + 1 : id,
                                    Phase = (uint)random.Next(0, 3),
                                    Segment = (uint)random.Next(0, 4),
                                    Piece = (uint)random.Next(0, 4),
                                    Dtype = (DType)random.Next(0, 7),
                                    Data = ByteString.CopyFrom(data)
                                });
                            }
                            await call.RequestStream.CompleteAsync();
                            await call.ResponseAsync;
                            break;
                        }
                    case 0:
                        {
                            var header = new ShardHeader { Step = i, Epoch = random.Next(-2, 3) };
                            header.Indices.AddRange([0, 0, 1, random.Next(-2, 100)]);
                            header.Views.AddRange([0, 1, 0, random.Next(-1, 3)]);
                            if (random.Next(4) == 0) header.ChunkSizes.AddRange([random.Next(-1, 5), random.Next(0, 5)]);
                            using var call = raw.Forward(Deadline());
                            if (random.Next(6) != 0) await call.RequestStream.WriteAsync(new ForwardMessage { Shard = header });
                            foreach (var c in Mutate(Chunks("images", DType.Uint8, [4, 3, 32, 32], imageBytes, 1024), random))
                                await call.RequestStream.WriteAsync(new ForwardMessage { Images = c });
                            if (random.Next(6) == 0) await call.RequestStream.WriteAsync(new ForwardMessage { Shard = header });
                            await call.RequestStream.CompleteAsync();
                            while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
                            break;
                        }
                    case 1:
                        {
                            using var call = raw.Backward(Deadline());
                            foreach (var c in Mutate(Chunks("dz", DType.Float32, [4, 8], new byte[128], 32), random)) await call.RequestStream.WriteAsync(c);
                            await call.RequestStream.CompleteAsync();
                            while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
                            break;
                        }
                    case 2:
                        {
                            using var call = raw.ApplyStep(Deadline());
                            await call.RequestStream.WriteAsync(new ApplyStepMessage { Step = new StepHeader { Step = i, LearningRate = random.Next(3) == 0 ? double.NaN : 0.0 } });
                            foreach (var c in Mutate(Chunks("gradient", DType.Float32, [1000], new byte[4000], 1000), random))
                                await call.RequestStream.WriteAsync(new ApplyStepMessage { Gradient = c });
                            await call.RequestStream.CompleteAsync();
                            await call.ResponseAsync;
                            break;
                        }
                    default:
                        {
                            using var call = raw.LoadState(Deadline());
                            foreach (var c in Mutate(Chunks("model.backbone.conv1.weight", DType.Float32, [4, 3, 3, 3], new byte[4 * 27 * 4], 100), random))
                                await call.RequestStream.WriteAsync(c);
                            await call.RequestStream.CompleteAsync();
                            await call.ResponseAsync;
                            break;
                        }
                }
                status = StatusCode.OK;
            }
            catch (RpcException e)
            {
                status = e.StatusCode;
                Assert.False(e.StatusCode is StatusCode.Internal or StatusCode.Unknown or StatusCode.DeadlineExceeded,
                    $"call {i}: {e.StatusCode} ({e.Status.Detail}): an unhandled exception or a hang");
            }
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            tried++;
        }
        Assert.Equal(300, tried);
        output.WriteLine($"{tried} malformed calls: " + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.True(statuses.GetValueOrDefault(StatusCode.InvalidArgument) > 100, string.Join(", ", statuses.Select(kv => $"{kv.Key} {kv.Value}")));

        // the worker is unharmed: health SERVING, and a correct step still works with replica checksums intact
        await WorkerPool.WaitHealthyAsync(new WorkerClient(_host.Address, TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(10));
        var state = await new LocalReplicaEndpoint(ReplicaFactory.Build(Config, train.Channels, train.Mean, train.Std, TorchSharp.torch.CPU)).SaveStateAsync(default);
        await joined[0].LoadStateAsync(state, default); // back to a known state (LoadState calls above may have changed conv1 validly)
        var step = new DataParallelStep(joined, new ContrastiveLoss(new NtXentLoss(0.5)), new BatchingOptions());
        var outcome = step.Run(train, [0, 1, 2, 3], epoch: 0, step: 0, learningRate: 0.1);
        Assert.True(double.IsFinite(outcome.Loss));
        joined[0].Dispose();
    }
}
