using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>A replica in this process, driven synchronously on the caller's (torch) thread.</summary>
public sealed class LocalReplicaEndpoint(ModelReplica replica, string name = "local") : IReplicaEndpoint
{
    public ModelReplica Replica { get; } = replica;

    public string Name { get; } = name;

    private double _callsMs; // Forward, Backward and ApplyStep since the last TakeTimes

    public ReplicaTimes TakeTimes()
    {
        var phases = Replica.TakeTimes();
        var times = phases with { SerializeMs = Math.Max(0, _callsMs - phases.TotalMs) };
        _callsMs = 0;
        return times;
    }

    private Timed Time() => new(this);

    /// <summary>Adds a call's wall time to the endpoint's (what its replica's phases do not account for is serialisation).</summary>
    private readonly struct Timed(LocalReplicaEndpoint endpoint) : IDisposable
    {
        private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();

        public void Dispose() => endpoint._callsMs += System.Diagnostics.Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
    }

    public Task<FloatBlock> ForwardAsync(ShardWork work, CancellationToken cancel)
    {
        using var timed = Time();
        using var scope = NewDisposeScope();
        var images = empty(work.ImageShape, ScalarType.Byte);
        work.Images.CopyTo(images.bytes);
        var views = work.Rows.Indices.Zip(work.Rows.Views, (i, v) => (i, v)).ToArray();
        var z = Replica.Forward(images, views, work.Epoch, work.Rows.ChunkSizes).to_type(ScalarType.Float32).cpu().contiguous();
        return Task.FromResult(new FloatBlock(z.shape, z.bytes.ToArray()));
    }

    public Task<GradientBytes?> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel)
    {
        BackwardInBuckets(gradient, null, null);
        return Task.FromResult(returnGradient ? Replica.FlatGradient() : null);
    }

    /// <summary>Back-propagates dL/dz for the last forward, handing each of <paramref name="buckets"/>' local gradient to
    /// <paramref name="ready"/> as soon as it is final (<see cref="ModelReplica.Backward(Tensor, IReadOnlyList{GradientBucket}?, Action{int, GradientBytes}?)"/>).</summary>
    public void BackwardInBuckets(FloatBlock gradient, IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBytes>? ready)
    {
        using var timed = Time();
        using var scope = NewDisposeScope();
        var g = empty(gradient.Shape, ScalarType.Float32);
        gradient.Data.CopyTo(g.bytes);
        Replica.ZeroGrad();
        Replica.Backward(g, buckets, ready);
    }

    public Task<string?> ApplyStepAsync(long step, double learningRate, byte[]? gradient, bool checksum, CancellationToken cancel)
    {
        using var timed = Time();
        using var scope = NewDisposeScope();
        if (gradient is not null) Replica.SetFlatGradient(gradient);
        Replica.Step(learningRate);
        return Task.FromResult(checksum ? Replica.Checksum() : null);
    }

    public Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel)
    {
        using var scope = NewDisposeScope();
        return Task.FromResult<IReadOnlyList<NamedBytes>>(Replica.State().Select(t => NamedBytes.From(t.Name, t.Tensor)).ToList());
    }

    public Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var item in state)
            {
                if (tensors.ContainsKey(item.Name)) throw new InvalidDataException($"state names {item.Name} twice");
                tensors[item.Name] = item.ToTensor();
            }
            Replica.LoadState(tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return Task.FromResult(Replica.Checksum());
    }

    public Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel) => Task.FromResult<IReplicaEndpoint?>(null);

    public void Dispose()
    {
    }
}
