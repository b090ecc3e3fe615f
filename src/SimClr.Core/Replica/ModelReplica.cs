using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// The worker's half of a data-parallel step on one device: augment a shard's views, forward them to outputs
/// (projections z for SimCLR, logits for a classifier), keeping what backward needs, back-propagate a given dL/dz, and
/// apply an optimiser step. The coordinator's half is the global loss over the outputs of all shards. Single-process
/// runs take exactly this split with one in-process replica, so both paths share the maths. Built by
/// <see cref="ReplicaFactory"/>; its time by phase goes to <see cref="Timer"/>.
/// </summary>
public sealed class ModelReplica : IDisposable
{
    private readonly IReadOnlyList<ModelStage> _stages;
    private readonly bool _ownsModel;
    private StagedGraph? _graph; // the last single-chunk Forward's, kept for Backward
    private CachedShard? _cached; // the last chunked Forward's images and views, re-forwarded by Backward
    private List<Tensor>? _exactSums; // float64 sums of the chunks' gradients, from the last chunked Backward
    private readonly ParameterFingerprint _fingerprint;

    public ModelReplica(nn.Module<Tensor, Tensor> network, MomentumOptimizer optimizer, ViewAugmenter augmenter, Device device, bool ownsModel = false,
        PhaseTimer? timer = null)
    {
        Network = network;
        Optimizer = optimizer;
        Augmenter = augmenter;
        Device = device;
        _ownsModel = ownsModel;
        Timer = timer ?? new PhaseTimer(device.type == DeviceType.CUDA ? () => Syncs.Synchronize(device) : null);
        _stages = network is IStagedNetwork staged ? staged.Stages() : [new ModelStage("network", network.forward, [.. network.parameters()])];
        Parameters = network.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        Layout = new GradientLayout(_stages, Parameters, Syncs);
        _fingerprint = new ParameterFingerprint(Parameters.Select(p => p.Parameter).ToList());
    }

    /// <summary>SimCLR's backbone + projection head, or a classifier (backbone + linear layer).</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>The ResNet-18 inside <see cref="Network"/> (features for kNN and linear probes).</summary>
    public ResNet Backbone => Network switch
    {
        SimClrNetwork simclr => simclr.Backbone,
        ResNet resnet => resnet,
        _ => throw new InvalidOperationException($"{Network.GetType().Name} has no ResNet-18 backbone"),
    };

    public MomentumOptimizer Optimizer { get; }

    public ViewAugmenter Augmenter { get; }

    public Device Device { get; }

    /// <summary>Where the replica's time goes, by phase.</summary>
    public PhaseTimer Timer { get; }

    /// <summary>Every read from the replica's device on the step's path, counted.</summary>
    public HostSyncs Syncs { get; } = new();

    /// <summary>On an asynchronous device (CUDA), the phases are timed exactly (each boundary waits for the device) on
    /// one step in this many, from <see cref="BeginStep"/>; 1: every step. Free on the CPU, where every step is exact.</summary>
    public int TimePhasesEverySteps { get; init; } = 1;

    /// <summary>A new step begins: its phases are timed exactly when it is one of every <see cref="TimePhasesEverySteps"/>.</summary>
    public void BeginStep(long step) => Timer.Synchronizing = TimePhasesEverySteps <= 1 || step % TimePhasesEverySteps == 0;

    /// <summary>Batch statistics (standard) or frozen running statistics (batch-independent outputs).</summary>
    public BatchNormStatistics BatchNorm { get; init; } = BatchNormStatistics.Batch;

    /// <summary>The network's stages (<see cref="IStagedNetwork"/>; one stage for any other network).</summary>
    public IReadOnlyList<ModelStage> Stages => _stages;

    /// <summary>The trainable parameters in state order: the layout of every flat gradient.</summary>
    public IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Parameters { get; }

    /// <summary>Where each parameter's gradient sits in the flat gradient, and its buckets.</summary>
    public GradientLayout Layout { get; }

    public long ParameterCount => Layout.Count;

    /// <summary>The flat gradient in buckets of whole stages (<see cref="GradientLayout.Buckets"/>).</summary>
    public IReadOnlyList<GradientBucket> Buckets(long capBytes) => Layout.Buckets(capBytes);

    /// <summary>
    /// Projections of the given views, [views, d], detached (a copy the coordinator may keep); what
    /// <see cref="Backward(Tensor)"/> needs stays here. <paramref name="images"/>: uint8, one row per view.
    /// <paramref name="chunkSizes"/> (summing to the rows) splits the views into separate forward passes, each its own
    /// BatchNorm batch. With more than one chunk this is gradient caching (Gao et al. 2021): the chunks are forwarded
    /// without a graph and only the uint8 images are kept; Backward re-forwards each chunk with a graph (the same views:
    /// augmentation is a pure function of (seed, epoch, index, view)) and back-propagates its slice, so activation
    /// memory is one chunk's, whatever the batch.
    /// </summary>
    public Tensor Forward(Tensor images, ReadOnlySpan<(long Index, int View)> views, long epoch, IReadOnlyList<int>? chunkSizes = null)
    {
        ReleaseGraph();
        int[] chunks = chunkSizes is null || chunkSizes.Count == 0 ? [views.Length] : [.. chunkSizes];
        if (chunks.Any(c => c < 1) || chunks.Sum() != views.Length)
            throw new ArgumentException($"chunk sizes [{string.Join(", ", chunks)}] do not split {views.Length} views");
        TrainMode();
        using var scope = NewDisposeScope();
        var onDevice = images.to(Device);
        if (chunks.Length == 1)
        {
            long start = Timer.Mark();
            var batch = Augmenter.Views(onDevice, views, epoch);
            long augmented = Timer.Add(ReplicaPhase.Augment, start);
            _graph = StagedGraph.Forward(_stages, batch); // owned here until Backward: the caller's scope may end first
            Timer.Add(ReplicaPhase.Forward, augmented);
            return _graph.Output.detach().clone().MoveToOuterDisposeScope();
        }
        var parts = new List<Tensor>(chunks.Length);
        using (no_grad())
        {
            int offset = 0;
            foreach (int size in chunks)
            {
                long start = Timer.Mark();
                var batch = Augmenter.Views(onDevice.narrow(0, offset, size), views.Slice(offset, size), epoch);
                long augmented = Timer.Add(ReplicaPhase.Augment, start);
                parts.Add(Network.forward(batch));
                Timer.Add(ReplicaPhase.Forward, augmented);
                offset += size;
            }
        }
        _cached = new CachedShard(onDevice.DetachFromDisposeScope(), views.ToArray(), epoch, chunks);
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Accumulates the parameter gradient of the global loss through this replica's graph, given dL/dz for its views.</summary>
    public void Backward(Tensor projectionGradient) => Run(projectionGradient, null, null);

    /// <summary>
    /// <see cref="Backward(Tensor)"/>, handing each bucket's local gradient (<see cref="Buckets"/>, in that order) to
    /// <paramref name="ready"/> as soon as backward has finished it, while the earlier stages are still being
    /// back-propagated: float32, or the exact float64 sums when there are several chunks (then only the last chunk's
    /// backward overlaps). The bytes are those of <see cref="FlatGradient"/> over the bucket's range. The network is
    /// back-propagated stage by stage either way (see <see cref="StagedGraph"/>), so the gradient has the same bits.
    /// </summary>
    public void Backward(Tensor projectionGradient, IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBytes>? ready) =>
        Run(projectionGradient, buckets, ready is null ? null : (i, bucket, sums) => ready(i, Layout.Flatten(bucket.FirstParameter, bucket.EndParameter, sums)));

    /// <summary>
    /// <see cref="Backward(Tensor)"/>, summing each bucket over <paramref name="communicator"/>'s ranks on the device as soon
    /// as backward has finished it (flattened into one buffer, summed in place on the stream torch uses, put back), so the
    /// parameters' gradients end as the sum over all replicas and nothing leaves the device. With several chunks the float64
    /// sums are summed (in float64) and rounded once, as on the ring. Every rank must run it with the same buckets.
    /// </summary>
    public void BackwardOnDevice(Tensor projectionGradient, IReadOnlyList<GradientBucket> buckets, IDeviceCommunicator communicator) =>
        Run(projectionGradient, buckets, (_, bucket, sums) =>
        {
            using var scope = NewDisposeScope();
            var flat = Layout.FlattenOnDevice(bucket.FirstParameter, bucket.EndParameter, sums);
            long start = Timer.Mark();
            communicator.AllReduceSum(flat);
            Timer.Add(ReplicaPhase.Collective, start);
            Layout.Scatter(bucket.FirstParameter, bucket.EndParameter, flat, sums);
        });

    private void Run(Tensor projectionGradient, IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBucket, List<Tensor>?>? hand)
    {
        DropExactSums();
        if (buckets is not null) Layout.CheckCover(buckets);
        double reforwardBefore = Timer[ReplicaPhase.Reforward], handoverBefore = Timer[ReplicaPhase.Handover], collectiveBefore = Timer[ReplicaPhase.Collective];
        long start = Timer.Mark();
        try
        {
            if (_cached is { } cached)
            {
                _exactSums = ChunkedBackward.Run(this, cached, projectionGradient, Emitter(buckets, hand));
                return;
            }
            var graph = _graph ?? throw new InvalidOperationException("Backward needs a Forward first");
            var z = graph.Output;
            if (!z.shape.SequenceEqual(projectionGradient.shape))
                throw new ArgumentException($"dL/dz has shape [{string.Join(", ", projectionGradient.shape)}], the projections [{string.Join(", ", z.shape)}]");
            using var scope = NewDisposeScope();
            _graph = null;
            var emit = Emitter(buckets, hand);
            graph.Backward(projectionGradient.to(Device).to_type(z.dtype), emit is null ? null : stage => emit(stage, null));
        }
        finally
        {
            ReleaseGraph();
            // the re-forward is counted on its own, the buckets' copies are serialisation, their sums on the device the ring's
            double ms = PhaseTimer.Ms(start, Timer.Mark()) - (Timer[ReplicaPhase.Reforward] - reforwardBefore) - (Timer[ReplicaPhase.Handover] - handoverBefore)
                - (Timer[ReplicaPhase.Collective] - collectiveBefore);
            Timer.AddMs(ReplicaPhase.Backward, Math.Max(0, ms));
        }
    }

    /// <summary>What runs after each stage's backward: hands a finished bucket to <paramref name="hand"/> (its gradients
    /// in the parameters', or, with float64 sums, added to those sums first).</summary>
    private Action<int, List<Tensor>?>? Emitter(IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBucket, List<Tensor>?>? hand)
    {
        if (buckets is null || hand is null) return null;
        int next = 0;
        return (stage, sums) =>
        {
            if (next >= buckets.Count || buckets[next].FirstStage != stage) return;
            var bucket = buckets[next];
            long start = Timer.Mark();
            double collectiveBefore = Timer[ReplicaPhase.Collective];
            if (sums is not null) AccumulateInto(sums, bucket.FirstParameter, bucket.EndParameter);
            hand(next++, bucket, sums);
            Timer.AddMs(ReplicaPhase.Handover, PhaseTimer.Ms(start, Timer.Mark()) - (Timer[ReplicaPhase.Collective] - collectiveBefore));
        };
    }

    /// <summary>Adds parameters [first, end)'s gradients to their float64 sums and zeroes them.</summary>
    internal void AccumulateInto(List<Tensor> sums, int first, int end)
    {
        using (no_grad())
        {
            for (int i = first; i < end; i++)
            {
                if (Parameters[i].Parameter.grad is not { } grad) continue;
                sums[i].PlusInPlace(grad);
                grad.zero_();
            }
        }
    }

    private void TrainMode()
    {
        Network.train();
        if (BatchNorm == BatchNormStatistics.Frozen)
        {
            foreach (var (_, module) in Network.named_modules())
                if (module is TorchSharp.Modules.BatchNorm bn) bn.eval();
        }
    }

    /// <summary>All parameter gradients (zeros where none), flattened in state order: float32, or the exact float64 sums
    /// when the last Backward summed several chunks.</summary>
    public GradientBytes FlatGradient() => Layout.Flatten(0, Parameters.Count, _exactSums);

    /// <summary>Installs a flat float32 gradient (as <see cref="FlatGradient"/> lays it out) as the parameters' gradients.</summary>
    public void SetFlatGradient(ReadOnlySpan<byte> gradient) => Layout.Install(gradient);

    /// <summary>SHA-256 (first 16 hex digits) of every parameter's bytes in state order: equal on bit-identical replicas.
    /// Copies all parameters to the host: for checkpoints and every checksumEverySteps (else <see cref="Fingerprint"/>).</summary>
    public string Checksum() => ReplicaState.Checksum(Parameters, Syncs);

    /// <summary>The parameters' fingerprint (<see cref="ParameterFingerprint"/>), computed on the device: one read.</summary>
    public string Fingerprint() => _fingerprint.Of(Syncs);

    /// <summary>The whole training state as named tensors (<see cref="ReplicaState.Of"/>).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() => ReplicaState.Of(Network, Optimizer);

    /// <summary>Replaces the model and optimiser state (<see cref="ReplicaState.Load"/>).</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state) => ReplicaState.Load(Network, Optimizer, state);

    public void ZeroGrad()
    {
        DropExactSums();
        Optimizer.ZeroGrad();
    }

    private void DropExactSums()
    {
        _exactSums?.ForEach(t => t.Dispose());
        _exactSums = null;
    }

    /// <summary>One optimiser step, refused (<see cref="NonFiniteGradientException"/>, nothing changed) when a gradient
    /// holds NaN or infinity: the values are counted on the device in one pass per parameter and read once. A gradient
    /// already counted on the host (a sum that came as bytes) needs no check: <paramref name="checkFinite"/> false.</summary>
    public void Step(double learningRate, bool checkFinite = true)
    {
        long start = Timer.Mark();
        try
        {
            if (checkFinite && NonFiniteGradients() is > 0 and var bad)
                throw new NonFiniteGradientException($"the gradient has {bad} non-finite value(s)");
            Optimizer.Step(learningRate);
        }
        finally
        {
            Timer.Add(ReplicaPhase.Optimizer, start);
        }
    }

    /// <summary>NaN and infinite values among the parameters' gradients: counted on the device, one read.</summary>
    public long NonFiniteGradients()
    {
        using var scope = NewDisposeScope();
        Tensor? count = null;
        foreach (var (_, p) in Parameters)
        {
            if (p.grad is not { } g) continue;
            var bad = isfinite(g).logical_not().sum(ScalarType.Float64); // exact up to 2^53 values
            count = count is null ? bad : count.PlusInPlace(bad);
        }
        return count is null ? 0 : (long)Syncs.Scalar(count);
    }

    private void ReleaseGraph()
    {
        _graph?.Dispose();
        _graph = null;
        _cached?.Images.Dispose();
        _cached = null;
    }

    public void Dispose()
    {
        ReleaseGraph();
        DropExactSums();
        _fingerprint.Dispose();
        Syncs.Dispose();
        if (!_ownsModel) return;
        Optimizer.Dispose();
        Network.Dispose();
    }
}
