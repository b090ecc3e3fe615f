using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>A shard of one step as a worker receives it: its rows, and their uint8 images ([rows, C, H, W]).</summary>
public sealed record ShardWork(long Step, long Epoch, ShardRows Rows, long[] ImageShape, byte[] Images);

/// <summary>A float32 tensor as bytes (projections, dL/dz): what crosses a process boundary.</summary>
public sealed record FloatBlock(long[] Shape, byte[] Data);

/// <summary>
/// A replica's local gradient, flat over the parameters in state order: float32, or float64 when the replica summed
/// several forward passes (chunks) itself, so that the gradient sum of a step is exact whoever summed what: float32
/// partials summed in float64 need no rounding (with rare exceptions at the last float64 bit, far below float32's),
/// and the total is rounded to float32 once.
/// </summary>
public sealed record GradientBytes(byte[] Data, bool Float64)
{
    public int ElementSize => Float64 ? 8 : 4;

    public long Count => Data.Length / ElementSize;

    /// <summary>The gradient as float32 bytes (rounded when it is float64).</summary>
    public byte[] ToFloat32() => Float64 ? Round(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(Data), out _) : Data;

    /// <summary>float64 values rounded to float32 bytes, counting the NaN and infinite results on the way.</summary>
    public static byte[] Round(ReadOnlySpan<double> values, out long nonFinite)
    {
        var rounded = new byte[values.Length * 4];
        nonFinite = RoundInto(values, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rounded.AsSpan()));
        return rounded;
    }

    /// <summary>float64 values rounded into <paramref name="target"/>; returns the NaN and infinite results.</summary>
    public static long RoundInto(ReadOnlySpan<double> values, Span<float> target)
    {
        long nonFinite = 0;
        for (int i = 0; i < values.Length; i++)
        {
            target[i] = (float)values[i];
            if (!float.IsFinite(target[i])) nonFinite++;
        }
        return nonFinite;
    }
}

/// <summary>One attempt at a step's ring all-reduce (<see cref="RingAllReduce"/>): a fresh id, the replicas' peer
/// addresses in ring order (a replica's rank is its place in the list), the precision, the piece size, and the bucket
/// cap in bytes (<see cref="ModelReplica.Buckets"/>; 0: one bucket after the whole backward).</summary>
public sealed record RingPlan(ulong Id, IReadOnlyList<string> Peers, Config.ReducePrecision Precision, int PieceElements, long BucketBytes = 0);

/// <summary>One named tensor of a replica's state as bytes: float32 for floating-point tensors, int64 otherwise.</summary>
public sealed record NamedBytes(string Name, bool IsFloat, long[] Shape, byte[] Data)
{
    public static NamedBytes From(string name, Tensor tensor)
    {
        bool isFloat = tensor.is_floating_point();
        using var scope = NewDisposeScope(); // keeps every intermediate referenced while the next call reads it
        var cpu = tensor.detach().cpu().to_type(isFloat ? ScalarType.Float32 : ScalarType.Int64).contiguous();
        return new NamedBytes(name, isFloat, tensor.shape, cpu.bytes.ToArray());
    }

    public Tensor ToTensor()
    {
        long count = Shape.Aggregate(1L, (a, b) => a * b);
        if (count * (IsFloat ? 4 : 8) != Data.Length)
            throw new InvalidDataException($"{Name}: {Data.Length} bytes for shape [{string.Join(", ", Shape)}]");
        var tensor = empty(Shape, IsFloat ? ScalarType.Float32 : ScalarType.Int64);
        Data.CopyTo(tensor.bytes);
        return tensor;
    }
}

/// <summary>
/// The coordinator's view of one model replica, wherever it lives: in this process (<see cref="LocalReplicaEndpoint"/>)
/// or in a worker process behind gRPC (SimClr.Coordinator). <see cref="DataParallelStep"/> drives a step through these
/// calls only, so the single-process run and the distributed run share one implementation of the step.
/// Callers block on the returned tasks from their torch thread; implementations must not need that thread.
/// </summary>
public interface IReplicaEndpoint : IDisposable
{
    string Name { get; }

    /// <summary>Augments and forwards the shard's views; returns the projections [rows, d].</summary>
    Task<FloatBlock> ForwardAsync(ShardWork work, CancellationToken cancel);

    /// <summary>Back-propagates dL/dz for the last forward; returns the local flat gradient (parameters in state
    /// order; see <see cref="GradientBytes"/>), or null when <paramref name="returnGradient"/> is false (the endpoint then keeps it for
    /// <see cref="ApplyStepAsync"/> with no gradient).</summary>
    Task<GradientBytes?> BackwardAsync(FloatBlock gradient, bool returnGradient, CancellationToken cancel);

    /// <summary>Where the other replicas' ring reaches this one, or null when it cannot take part in a ring (in-process
    /// replicas; the step then reduces through the coordinator).</summary>
    string? PeerAddress => null;

    /// <summary>Back-propagates dL/dz for the last forward, then sums the local gradient with the other replicas' over
    /// <paramref name="ring"/> as rank <paramref name="rank"/>: the replica keeps the sum for <see cref="ApplyStepAsync"/>
    /// with no gradient. Returns the NaN and infinite values in the segment it completed (their sum over the ring is the
    /// sum's). A peer failing makes it throw <see cref="RingBrokenException"/>.</summary>
    Task<long> BackwardReduceAsync(FloatBlock gradient, RingPlan ring, int rank, CancellationToken cancel) =>
        throw new NotSupportedException($"{Name} cannot take part in a ring all-reduce");

    /// <summary>Installs <paramref name="gradient"/> (or, when null, the ring's sum after <see cref="BackwardReduceAsync"/>,
    /// else the local gradient), takes one optimiser step, and returns the parameter checksum (null allowed when
    /// <paramref name="checksum"/> is false).</summary>
    Task<string?> ApplyStepAsync(long step, double learningRate, byte[]? gradient, bool checksum, CancellationToken cancel);

    /// <summary>The replica's state: "model." + state_dict and "optimizer." + momentum buffers.</summary>
    Task<IReadOnlyList<NamedBytes>> SaveStateAsync(CancellationToken cancel);

    /// <summary>Replaces the replica's state (names as <see cref="SaveStateAsync"/>); returns the parameter checksum.</summary>
    Task<string> LoadStateAsync(IReadOnlyList<NamedBytes> state, CancellationToken cancel);

    /// <summary>What the replica spent on its own work (<see cref="ReplicaTimes"/>) in the Forward, Backward and
    /// ApplyStep calls since the last call of this; the counters restart. <see cref="ReplicaTimes.None"/> when the
    /// endpoint cannot tell (the step then counts those calls' whole time as transfer).</summary>
    ReplicaTimes TakeTimes() => ReplicaTimes.None;

    /// <summary>After this replica was lost: a new endpoint to the same worker when it answers again and has joined the
    /// run anew (its state still to be loaded), else null. Gives up quickly when the worker is not there.</summary>
    Task<IReplicaEndpoint?> TryReconnectAsync(CancellationToken cancel);
}

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
