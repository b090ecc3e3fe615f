using System.Diagnostics;
using SimClr.Core.Checkpoints;
using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// A replica serving a run's steps, whoever drives it (<see cref="LocalReplicaEndpoint"/> in this process, a worker's
/// gRPC service in another): Forward, then Backward (the gradient returned and kept) or BackwardInBuckets (for a ring,
/// whose sum comes back through <see cref="KeepRingSum"/>), then Apply. Calls out of that order are refused with an
/// <see cref="InvalidOperationException"/> that says what is missing. Every call runs on the torch thread and
/// returns what the replica spent in it by phase (the call's time beyond them is serialisation).
/// </summary>
public sealed class ReplicaSession : IDisposable
{
    private readonly Lock _gate = new();
    private long[]? _pending; // the last Forward's output shape, while its backward is due
    private bool _ownGradient; // a Backward since the last Apply left the replica's own gradient in place
    private byte[]? _ringSum; // the last ring's sum, for an Apply of StepGradient.Ring
    private bool _summedOnDevice; // the last BackwardReduceOnDevice left the sum in the gradients, for an Apply of StepGradient.Ring

    public ReplicaSession(ModelReplica replica)
    {
        Replica = replica;
        var layout = new Dictionary<string, StateTensor>();
        foreach (var (name, tensor) in replica.Network.state_dict())
            layout[Checkpoint.ModelPrefix + name] = new StateTensor(tensor.is_floating_point(), tensor.shape);
        foreach (var (name, parameter) in replica.Parameters) // momentum buffers, one a parameter at most
            layout[Checkpoint.OptimizerPrefix + name] = new StateTensor(true, parameter.shape);
        StateLayout = layout;
        StateBytes = layout.Values.Sum(t => t.Bytes);
    }

    public ModelReplica Replica { get; }

    public long ParameterCount => Replica.ParameterCount;

    /// <summary>Every tensor a state sent to this replica may hold (<see cref="ModelReplica.State"/>'s names): its kind and shape.</summary>
    public IReadOnlyDictionary<string, StateTensor> StateLayout { get; }

    /// <summary>The bytes of all of <see cref="StateLayout"/>: the most a state sent to this replica can be.</summary>
    public long StateBytes { get; }

    /// <summary>The shape dL/dz must have for the next backward (the last Forward's outputs), or null when no backward is due.</summary>
    public long[]? PendingProjections
    {
        get
        {
            lock (_gate) return _pending;
        }
    }

    /// <summary>Augments and forwards the shard's views; the projections as float32 on the replica's device, or with
    /// <paramref name="toHost"/> (for a transport) as bytes, copied here in one counted copy. A shard without images
    /// (data.sharedStorage) takes its rows from <paramref name="data"/>, this replica's own copy of the data set.</summary>
    public Timed<FloatBlock> Forward(ShardWork work, bool toHost = false, Data.ImageDataSet? data = null)
    {
        long start = Stopwatch.GetTimestamp();
        lock (_gate) _pending = null;
        if (work.Images is null && data is null) throw new InvalidOperationException("a shard without images needs the data set it indexes (data.sharedStorage)");
        Replica.BeginStep(work.Step);
        using var scope = NewDisposeScope();
        Tensor images;
        if (work.Images is null)
        {
            images = data!.Batch(work.Rows.Indices);
        }
        else
        {
            images = empty(work.ImageShape, ScalarType.Byte);
            work.Images.CopyTo(images.bytes);
        }
        var views = work.Rows.Indices.Zip(work.Rows.Views, (i, v) => (i, v)).ToArray();
        var z = Replica.Forward(images, views, work.Epoch, work.Rows.ChunkSizes).to_type(ScalarType.Float32);
        var block = FloatBlock.OnDevice(z, Replica.Syncs);
        if (toHost) block.ToHost();
        lock (_gate) _pending = block.Shape;
        return new(block, TimesSince(start));
    }

    /// <summary>Back-propagates dL/dz for the last Forward, keeping the gradient for an Apply of <see cref="StepGradient.Own"/>;
    /// returns it flat (parameters in state order) when <paramref name="returnGradient"/>, else null.</summary>
    public Timed<GradientBytes?> Backward(FloatBlock dz, bool returnGradient)
    {
        long start = Stopwatch.GetTimestamp();
        RunBackward(dz, Replica.Backward);
        return new(returnGradient ? Replica.FlatGradient() : null, TimesSince(start));
    }

    /// <summary>Back-propagates dL/dz for the last Forward, handing each of <paramref name="buckets"/>' gradient to
    /// <paramref name="ready"/> as soon as it is final (<see cref="ModelReplica.Backward(Tensor, IReadOnlyList{GradientBucket}?, Action{int, GradientBytes}?)"/>).</summary>
    public ReplicaTimes BackwardInBuckets(FloatBlock dz, IReadOnlyList<GradientBucket> buckets, Action<int, GradientBytes> ready)
    {
        long start = Stopwatch.GetTimestamp();
        RunBackward(dz, g => Replica.Backward(g, buckets, ready));
        return TimesSince(start);
    }

    /// <summary>Back-propagates dL/dz for the last Forward, summing each bucket over <paramref name="communicator"/> on the
    /// device as backward finishes it (<see cref="ModelReplica.BackwardOnDevice"/>): the gradients then hold the sum over all
    /// replicas, for an Apply of <see cref="StepGradient.Ring"/>. Returns the NaN and infinite values in that sum, counted on
    /// the device (one read; the same on every rank), and the times.</summary>
    public Timed<long> BackwardReduceOnDevice(FloatBlock dz, IReadOnlyList<GradientBucket> buckets, IDeviceCommunicator communicator)
    {
        long start = Stopwatch.GetTimestamp();
        RunBackward(dz, g => Replica.BackwardOnDevice(g, buckets, communicator));
        long bad = Replica.NonFiniteGradients();
        lock (_gate)
        {
            _ownGradient = false;
            _summedOnDevice = true;
        }
        return new(bad, TimesSince(start));
    }

    /// <summary>Checks that a backward is due, then runs <paramref name="backward"/> on dL/dz on the replica's device, the
    /// gradients zeroed first.</summary>
    private void RunBackward(FloatBlock dz, Action<Tensor> backward)
    {
        lock (_gate)
        {
            _ringSum = null;
            _summedOnDevice = false;
            _ownGradient = false;
            if (_pending is null) throw new InvalidOperationException("Backward needs a Forward first");
            _pending = null;
        }
        using (var scope = NewDisposeScope())
        {
            var g = dz.ToTensor(Replica.Device);
            Replica.ZeroGrad();
            backward(g);
        }
        lock (_gate) _ownGradient = true;
    }

    /// <summary>The sum the ring all-reduce computed from this replica's buckets, for an Apply of <see cref="StepGradient.Ring"/>.</summary>
    public void KeepRingSum(byte[] sum)
    {
        lock (_gate) _ringSum = sum;
    }

    /// <summary>Installs the gradient, takes one optimiser step, and returns what shows the replicas agree
    /// (<paramref name="agreement"/>: null, the fingerprint, or the SHA-256 checksum). The replica's own gradient is checked
    /// on its device first (<see cref="NonFiniteGradientException"/>, nothing changed); a sum that came as bytes was
    /// counted on the host by whoever summed it.</summary>
    public Timed<string?> Apply(double learningRate, StepGradient gradient, Agreement agreement = Agreement.Full)
    {
        long start = Stopwatch.GetTimestamp();
        byte[]? install;
        lock (_gate)
        {
            install = gradient.Source switch
            {
                GradientSource.Sent => gradient.Sum,
                GradientSource.Ring when _summedOnDevice => null, // the sum is in the gradients already
                GradientSource.Ring => _ringSum ?? throw new InvalidOperationException("ApplyStep with reduced needs a BackwardReduce first"),
                _ => _ownGradient ? null : throw new InvalidOperationException("ApplyStep of the replica's own gradient needs a Backward first"),
            };
            _ringSum = null;
            _summedOnDevice = false;
            _ownGradient = false;
        }
        using var scope = NewDisposeScope();
        if (install is not null) Replica.SetFlatGradient(install);
        Replica.Step(learningRate, checkFinite: gradient.Source == GradientSource.Own);
        string? check = agreement switch
        {
            Agreement.Fingerprint => Replica.Fingerprint(),
            Agreement.Full => Replica.Checksum(),
            _ => null,
        };
        return new(check, TimesSince(start));
    }

    /// <summary>The replica's state: "model." + state_dict and "optimizer." + momentum buffers, as float32 or int64 bytes.</summary>
    public IReadOnlyList<NamedBytes> SaveState()
    {
        using var scope = NewDisposeScope();
        return Replica.State().Select(t => NamedBytes.From(t.Name, t.Tensor)).ToList();
    }

    /// <summary>Replaces the replica's state (names as <see cref="SaveState"/>; checked before anything changes); the
    /// parameter checksum.</summary>
    public string LoadState(IReadOnlyList<NamedBytes> state)
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
        lock (_gate)
        {
            _pending = null;
            _ringSum = null;
            _summedOnDevice = false;
            _ownGradient = false;
        }
        string checksum = Replica.Checksum();
        Replica.Syncs.Take(); // a state loaded between steps: not a step's reads
        return checksum;
    }

    /// <summary>The replica's phases since the last call, and the rest of the call's time since <paramref name="start"/> as
    /// serialisation; its host synchronisations since the last call.</summary>
    private ReplicaTimes TimesSince(long start)
    {
        var phases = Replica.Timer.Take();
        return phases with { SerializeMs = Math.Max(0, Stopwatch.GetElapsedTime(start).TotalMilliseconds - phases.TotalMs), Syncs = Replica.Syncs.Take() };
    }

    public void Dispose() => Replica.Dispose();
}
