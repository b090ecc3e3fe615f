using SimClr.Core.Training;
using SimClr.Protocol;

namespace SimClr.Coordinator;

/// <summary>A replica in a worker process: <see cref="IReplicaEndpoint"/> over the Worker service's chunked calls.</summary>
public sealed class GrpcReplicaEndpoint(WorkerClient client, string name) : IReplicaEndpoint
{
    private byte[]? _localGradient;

    public WorkerClient Client { get; } = client;

    public string Name { get; } = name;

    public async Task<FloatBlock> ForwardAsync(ShardWork work, CancellationToken cancel)
    {
        var header = new ShardHeader { Step = work.Step, Epoch = work.Epoch };
        header.Indices.AddRange(work.Rows.Indices);
        header.Views.AddRange(work.Rows.Views);
        if (work.Rows.ChunkSizes.Length > 1) header.ChunkSizes.AddRange(work.Rows.ChunkSizes);
        var z = await Client.ForwardAsync(header, work.ImageShape, work.Images, cancel);
        if (z.DType != DType.Float32) throw new ProtocolViolation($"{Name} answered projections as {z.DType}, not float32");
        return new FloatBlock(z.Shape, z.Data);
    }

    public async Task<byte[]?> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel)
    {
        var local = await Client.BackwardAsync(gradient.Shape, gradient.Data, cancel);
        if (local.DType != DType.Float32 || local.Shape.Length != 1) throw new ProtocolViolation($"{Name} answered a gradient {local.DType} [{string.Join(", ", local.Shape)}], not a flat float32 tensor");
        _localGradient = returnGradient ? null : local.Data;
        return returnGradient ? local.Data : null;
    }

    public async Task<string?> ApplyStepAsync(long step, double learningRate, byte[]? gradient, bool checksum, CancellationToken cancel)
    {
        var send = gradient ?? _localGradient ?? throw new InvalidOperationException($"{Name}: no gradient to apply (Backward first)");
        _localGradient = null;
        return await Client.ApplyStepAsync(step, learningRate, send, cancel);
    }

    public async Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel)
    {
        var tensors = await Client.SaveStateAsync(cancel);
        return tensors.Select(t => t.DType switch
        {
            DType.Float32 => new NamedBytes(t.Name, true, t.Shape, t.Data),
            DType.Int64 => new NamedBytes(t.Name, false, t.Shape, t.Data),
            _ => throw new ProtocolViolation($"{Name} sent state tensor {t.Name} as {t.DType}; state travels as float32 or int64"),
        }).ToList();
    }

    public async Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel)
    {
        var reply = await Client.LoadStateAsync(state.Select(s => (s.Name, s.IsFloat ? DType.Float32 : DType.Int64, s.Shape, s.Data)), cancel);
        if (reply.Tensors != state.Count) throw new ProtocolViolation($"{Name} loaded {reply.Tensors} of {state.Count} state tensors");
        return reply.Checksum;
    }

    public void Dispose() => Client.Dispose();
}
