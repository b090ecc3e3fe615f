using System.Diagnostics;
using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using SimClr.Core.Runtime;
using SimClr.Core.Step;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// The worker's half of a data-parallel step on one device: augment a shard's views, forward them to outputs
/// (projections z for SimCLR, logits for a classifier), keeping what backward needs, back-propagate a given dL/dz, and
/// apply an optimiser step. The coordinator's half is the global loss over the outputs of all shards
/// (<see cref="IStepLoss"/>). Single-process runs take exactly this split with one in-process replica, so both paths
/// share the maths.
/// </summary>
public sealed class ModelReplica : IDisposable
{
    private StagedGraph? _graph; // the last single-chunk Forward's, kept for Backward
    private readonly IReadOnlyList<ModelStage> _stages;
    private readonly int[] _stageParameterStart; // per stage, then the total: index of its first parameter in state order
    private readonly long[] _stageValueStart; // per stage, then the total: offset of its first value in the flat gradient
    private static readonly Lock BuildGate = new();
    private CachedShard? _cached;
    private List<Tensor>? _exactSums; // float64 sums of the chunks' gradients, from the last cached Backward
    private List<(string Name, TorchSharp.Modules.Parameter Parameter)>? _parameters;
    private bool _ownsModel;
    private double _augmentMs, _forwardMs, _reforwardMs, _backwardMs, _optimizerMs; // since the last TakeTimes
    private double _handoverMs; // copying finished buckets out during backward (serialisation, not backward)

    public ModelReplica(nn.Module<Tensor, Tensor> network, MomentumOptimizer optimizer, ViewAugmenter augmenter, Device device)
    {
        Network = network;
        Optimizer = optimizer;
        Augmenter = augmenter;
        Device = device;
        _stages = network is IStagedNetwork staged ? staged.Stages() : [new ModelStage("network", network.forward, [.. network.parameters()])];
        if (!_stages.SelectMany(stage => stage.Parameters).SequenceEqual(Parameters.Select(p => p.Parameter), ReferenceEqualityComparer.Instance))
            throw new InvalidOperationException($"{network.GetType().Name}'s stages do not hold its parameters in state order");
        _stageParameterStart = new int[_stages.Count + 1];
        _stageValueStart = new long[_stages.Count + 1];
        for (int s = 0; s < _stages.Count; s++)
        {
            _stageParameterStart[s + 1] = _stageParameterStart[s] + _stages[s].Parameters.Count;
            _stageValueStart[s + 1] = _stageValueStart[s] + _stages[s].Parameters.Sum(p => p.numel());
        }
    }

    /// <summary>The network's stages (<see cref="IStagedNetwork"/>; one stage for any other network).</summary>
    public IReadOnlyList<ModelStage> Stages => _stages;

    /// <summary>
    /// The flat gradient cut into buckets of whole stages, in the order backward finishes them (last stage first): each
    /// bucket takes stages until the next would bring it over <paramref name="capBytes"/> of float32 (a stage larger
    /// than the cap is a bucket of its own); 0 or less: one bucket. DDP's buckets, at stage granularity (PyTorch's default
    /// cap is 25 MB). Depends on the model alone, so every replica of a run computes the same buckets.
    /// </summary>
    public IReadOnlyList<GradientBucket> Buckets(long capBytes)
    {
        var buckets = new List<GradientBucket>();
        int last = _stages.Count - 1;
        long bytes = 0;
        for (int s = _stages.Count - 1; s >= 0; s--)
        {
            long stageBytes = (_stageValueStart[s + 1] - _stageValueStart[s]) * 4;
            if (capBytes > 0 && bytes > 0 && stageBytes > 0 && bytes + stageBytes > capBytes)
            {
                buckets.Add(Bucket(s + 1, last));
                last = s;
                bytes = 0;
            }
            bytes += stageBytes;
        }
        buckets.Add(Bucket(0, last));
        return buckets;
    }

    private GradientBucket Bucket(int first, int last) => new(first, last, _stageParameterStart[first], _stageParameterStart[last + 1],
        _stageValueStart[first], _stageValueStart[last + 1] - _stageValueStart[first]);

    /// <summary>
    /// The one way a replica is built from a run config, so the single-process trainer, every worker and the tests
    /// get identical replicas: seeded initialisation, the config's model, optimiser, augmentation and BN mode.
    /// The replica owns the network and optimiser it builds.
    /// </summary>
    public static ModelReplica Build(Config.RunConfig config, int channels, double[] mean, double[] std, Device device, int classes = 0, bool loadPretrained = true)
    {
        nn.Module<Tensor, Tensor> network;
        lock (BuildGate) // torch's default generator is process-wide: seeding and initialising must not interleave with another build
        {
            manual_seed((long)config.Seed);
            var backbone = new ResNetOptions(config.Model.Width, channels);
            if (config.Stage == Config.Stage.Pretrain)
            {
                network = new SimClrNetwork(backbone, config.Model.ProjectionHidden, config.Model.ProjectionDim);
            }
            else
            {
                if (classes < 2) throw new Config.ConfigException($"a classifier needs at least 2 classes (got {classes})");
                network = new ResNet18(backbone, classes);
            }
        }
        if (config.Stage == Config.Stage.Finetune && loadPretrained)
        {
            if (config.Pretrained is null) throw new Config.ConfigException("finetune needs pretrained: a pre-training checkpoint or exported backbone");
            var weights = Checkpoints.BackboneWeights.Load(config.Pretrained);
            try
            {
                Checkpoints.BackboneWeights.LoadInto((ResNet18)network, weights, config.Pretrained);
            }
            finally
            {
                foreach (var t in weights.Values) t.Dispose();
            }
        }
        network.to(device);
        var optimizer = new MomentumOptimizer(network.named_parameters().Select(p => (p.name, p.parameter)), config.Optimizer);
        return new ModelReplica(network, optimizer, new ViewAugmenter(config.Augment, config.Seed, mean, std), device)
        {
            BatchNorm = config.Model.BatchNorm,
            _ownsModel = true,
        };
    }

    /// <summary>SimCLR's backbone + projection head, or a classifier (backbone + linear layer).</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>The ResNet-18 inside <see cref="Network"/> (features for kNN and linear probes).</summary>
    public ResNet18 Backbone => Network switch
    {
        SimClrNetwork simclr => simclr.Backbone,
        ResNet18 resnet => resnet,
        _ => throw new InvalidOperationException($"{Network.GetType().Name} has no ResNet-18 backbone"),
    };

    public MomentumOptimizer Optimizer { get; }

    public ViewAugmenter Augmenter { get; }

    public Device Device { get; }

    /// <summary>Batch statistics (standard) or frozen running statistics (batch-independent outputs).</summary>
    public Config.BatchNormStatistics BatchNorm { get; init; } = Config.BatchNormStatistics.Batch;

    /// <summary>
    /// Projections of the given views, [views, d], detached (a copy the coordinator may keep); what
    /// <see cref="Backward"/> needs stays here. <paramref name="images"/>: uint8, one row per view.
    /// <paramref name="chunkSizes"/> (summing to the rows) splits the views into separate forward passes, each its own
    /// BatchNorm batch. With more than one chunk this is gradient caching (Gao et al. 2021): the chunks are forwarded
    /// without a graph and only the uint8 images are kept; <see cref="Backward"/> re-forwards each chunk with a graph
    /// (the same views: augmentation is a pure function of (seed, epoch, index, view)) and back-propagates its slice,
    /// so activation memory is one chunk's, whatever the batch.
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
            long start = Mark();
            var batch = Augmenter.Views(onDevice, views, epoch);
            long augmented = Mark();
            _graph = StagedGraph.Forward(_stages, batch); // owned here until Backward: the caller's scope may end first
            long forwarded = Mark();
            _augmentMs += Ms(start, augmented);
            _forwardMs += Ms(augmented, forwarded);
            return _graph.Output.detach().clone().MoveToOuterDisposeScope();
        }
        var parts = new List<Tensor>(chunks.Length);
        using (no_grad())
        {
            int offset = 0;
            foreach (int size in chunks)
            {
                long start = Mark();
                var batch = Augmenter.Views(onDevice.narrow(0, offset, size), views.Slice(offset, size), epoch);
                long augmented = Mark();
                parts.Add(Network.forward(batch));
                long forwarded = Mark();
                _augmentMs += Ms(start, augmented);
                _forwardMs += Ms(augmented, forwarded);
                offset += size;
            }
        }
        _cached = new CachedShard(onDevice.DetachFromDisposeScope(), views.ToArray(), epoch, chunks);
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Accumulates the parameter gradient of the global loss through this replica's graph, given dL/dz for its views.</summary>
    public void Backward(Tensor projectionGradient) => Backward(projectionGradient, null, null);

    /// <summary>
    /// <see cref="Backward(Tensor)"/>, handing each bucket's local gradient (<see cref="Buckets"/>, in that order) to
    /// <paramref name="ready"/> as soon as backward has finished it, while the earlier stages are still being
    /// back-propagated: float32, or the exact float64 sums when there are several chunks (then only the last chunk's
    /// backward overlaps). The bytes are those of <see cref="FlatGradient"/> over the bucket's range. The network is
    /// back-propagated stage by stage either way (see <see cref="StagedGraph"/>), so the gradient has the same bits.
    /// </summary>
    public void Backward(Tensor projectionGradient, IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBytes>? ready)
    {
        DropExactSums();
        if (buckets is not null && (buckets.Count == 0 || buckets[0].LastStage != _stages.Count - 1 || buckets[^1].FirstStage != 0
            || buckets.Zip(buckets.Skip(1)).Any(pair => pair.Second.LastStage != pair.First.FirstStage - 1)))
            throw new ArgumentException($"buckets [{string.Join(", ", buckets)}] do not cover the {_stages.Count} stages, last first", nameof(buckets));
        double reforwardBefore = _reforwardMs, handoverBefore = _handoverMs;
        long start = Mark();
        try
        {
            if (_cached is { } cached)
            {
                BackwardCached(cached, projectionGradient, buckets, ready);
                return;
            }
            var graph = _graph ?? throw new InvalidOperationException("Backward needs a Forward first");
            var z = graph.Output;
            if (!z.shape.SequenceEqual(projectionGradient.shape))
                throw new ArgumentException($"dL/dz has shape [{string.Join(", ", projectionGradient.shape)}], the projections [{string.Join(", ", z.shape)}]");
            using var scope = NewDisposeScope();
            _graph = null;
            graph.Backward(projectionGradient.to(Device).to_type(z.dtype), Emitter(buckets, ready, sums: null));
            ReleaseGraph();
        }
        finally
        {
            // the re-forward is counted on its own, the buckets' copies are serialisation
            _backwardMs += Math.Max(0, Ms(start, Mark()) - (_reforwardMs - reforwardBefore) - (_handoverMs - handoverBefore));
        }
    }

    /// <summary>
    /// Milliseconds spent since the last call in augmentation, forward, the gradient-caching re-forward, backward
    /// (without the re-forward) and the optimiser step (serialise is the caller's: 0 here); the counters restart.
    /// Torch on CPU is synchronous; on CUDA the device is synchronised at each phase boundary, so the times are the
    /// kernels' too (at the cost of those few synchronisations per step).
    /// </summary>
    public ReplicaTimes TakeTimes()
    {
        var times = new ReplicaTimes(_augmentMs, _forwardMs, _reforwardMs, _backwardMs, _optimizerMs, 0);
        _augmentMs = _forwardMs = _reforwardMs = _backwardMs = _optimizerMs = 0;
        return times;
    }

    private long Mark()
    {
        if (Device.type == DeviceType.CUDA) cuda.synchronize(Device);
        return Stopwatch.GetTimestamp();
    }

    private static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    /// <summary>What runs after each stage's backward: hands a finished bucket's gradient to <paramref name="ready"/>
    /// (from the parameters' gradients, or, with <paramref name="sums"/>, added to those float64 sums first).</summary>
    private Action<int>? Emitter(IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBytes>? ready, List<Tensor>? sums)
    {
        if (buckets is null || ready is null) return null;
        int next = 0;
        return stage =>
        {
            if (next >= buckets.Count || buckets[next].FirstStage != stage) return;
            var bucket = buckets[next];
            long start = Mark();
            if (sums is not null) AccumulateInto(sums, bucket.FirstParameter, bucket.EndParameter);
            var bytes = FlatGradient(bucket.FirstParameter, bucket.EndParameter, sums);
            _handoverMs += Ms(start, Mark());
            ready(next++, bytes);
        };
    }

    /// <summary>Adds parameters [first, end)'s gradients to their float64 sums and zeroes them.</summary>
    private void AccumulateInto(List<Tensor> sums, int first, int end)
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

    private void BackwardCached(CachedShard cached, Tensor projectionGradient, IReadOnlyList<GradientBucket>? buckets, Action<int, GradientBytes>? ready)
    {
        if (projectionGradient.dim() != 2 || projectionGradient.shape[0] != cached.Views.Length)
            throw new ArgumentException($"dL/dz has shape [{string.Join(", ", projectionGradient.shape)}] for {cached.Views.Length} views");
        // The no-graph pass already moved the BN running statistics once per chunk; the re-forward must not again.
        var buffers = Network.named_buffers().Select(b => (b.buffer, Saved: b.buffer.clone())).ToList();
        // Each chunk's gradient is summed in float64 and rounded once (see GradientBytes): the same groups summed by one
        // replica or by several give the same bits.
        var sums = Parameters.Select(p => zeros(p.Parameter.shape, ScalarType.Float64, p.Parameter.device).DetachFromDisposeScope()).ToList();
        try
        {
            int offset = 0;
            for (int c = 0; c < cached.Chunks.Length; c++)
            {
                int size = cached.Chunks[c];
                bool last = c == cached.Chunks.Length - 1;
                using var scope = NewDisposeScope();
                long start = Mark();
                var batch = Augmenter.Views(cached.Images.narrow(0, offset, size), cached.Views.AsSpan(offset, size), cached.Epoch);
                var graph = StagedGraph.Forward(_stages, batch);
                _reforwardMs += Ms(start, Mark());
                var emit = last ? Emitter(buckets, ready, sums) : null; // only the last chunk's gradients end during its backward
                graph.Backward(projectionGradient.narrow(0, offset, size).to(Device).to_type(graph.Output.dtype), emit);
                if (emit is null) AccumulateInto(sums, 0, sums.Count);
                offset += size;
            }
            using (no_grad())
            {
                for (int i = 0; i < sums.Count; i++)
                {
                    var p = Parameters[i].Parameter;
                    if (p.grad is null) p.grad = sums[i].to_type(p.dtype).DetachFromDisposeScope();
                    else p.grad.copy_(sums[i]);
                }
            }
            _exactSums = sums;
            sums = null;
        }
        finally
        {
            sums?.ForEach(t => t.Dispose());
            using (no_grad())
            {
                foreach (var (buffer, saved) in buffers)
                {
                    buffer.copy_(saved);
                    saved.Dispose();
                }
            }
            ReleaseGraph();
        }
    }

    private void TrainMode()
    {
        Network.train();
        if (BatchNorm == Config.BatchNormStatistics.Frozen)
        {
            foreach (var (_, module) in Network.named_modules())
                if (module is TorchSharp.Modules.BatchNorm bn) bn.eval();
        }
    }

    /// <summary>The trainable parameters in state order: the layout of every flat gradient.</summary>
    public IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Parameters =>
        _parameters ??= Network.named_parameters().Select(p => (p.name, p.parameter)).ToList();

    public long ParameterCount => Parameters.Sum(p => p.Parameter.numel());

    /// <summary>All parameter gradients (zeros where none), flattened in state order: float32, or the exact float64 sums
    /// when the last Backward summed several chunks.</summary>
    public GradientBytes FlatGradient() => FlatGradient(0, Parameters.Count, _exactSums);

    /// <summary>Parameters [first, end)'s gradients flattened in state order: their float64 <paramref name="sums"/> when
    /// given, else their float32 gradients (zeros where none). The bytes of one bucket, or of the whole gradient.</summary>
    private GradientBytes FlatGradient(int first, int end, List<Tensor>? sums)
    {
        using var scope = NewDisposeScope();
        var parts = sums is not null
            ? sums.GetRange(first, end - first).Select(t => t.flatten().cpu()).ToList()
            : Enumerable.Range(first, end - first).Select(i => (Parameters[i].Parameter.grad ?? zeros_like(Parameters[i].Parameter)).flatten().to_type(ScalarType.Float32).cpu()).ToList();
        return new GradientBytes(parts.Count == 0 ? [] : cat(parts, 0).bytes.ToArray(), Float64: sums is not null);
    }

    /// <summary>Installs a flat float32 gradient (as <see cref="FlatGradient"/> lays it out) as the parameters' gradients.</summary>
    public void SetFlatGradient(ReadOnlySpan<byte> gradient)
    {
        if (gradient.Length != ParameterCount * 4)
            throw new ArgumentException($"a flat gradient of {gradient.Length} bytes for {ParameterCount} parameters");
        using var scope = NewDisposeScope();
        var flat = empty([gradient.Length / 4], ScalarType.Float32);
        gradient.CopyTo(flat.bytes);
        long offset = 0;
        using (no_grad())
        {
            foreach (var (_, p) in Parameters)
            {
                var slice = flat.narrow(0, offset, p.numel()).view(p.shape).to(p.device).to_type(p.dtype);
                if (p.grad is null) p.grad = slice.clone().DetachFromDisposeScope();
                else p.grad.copy_(slice);
                offset += p.numel();
            }
        }
    }

    /// <summary>SHA-256 (first 16 hex digits) of every parameter's bytes in state order: equal on bit-identical replicas.</summary>
    public string Checksum()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (_, p) in Parameters)
        {
            // in a scope, so the intermediate of detach() stays referenced while cpu() reads it (see Runtime.Scalars:
            // an unreferenced temporary can be finalized mid-call when another thread triggers a GC)
            using var scope = NewDisposeScope();
            var cpu = p.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    /// <summary>The whole training state as named tensors: "model." + state_dict, "optimizer." + momentum buffers (the checkpoint's names).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        Network.state_dict().Select(kv => (Checkpoints.Checkpoint.ModelPrefix + kv.Key, kv.Value))
            .Concat(Optimizer.State().Select(t => (Checkpoints.Checkpoint.OptimizerPrefix + t.Name, t.Tensor)));

    /// <summary>Replaces the model state and the optimiser state with <paramref name="state"/> (names as <see cref="State"/>); every model tensor must be there.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        var model = Network.state_dict();
        var unknown = state.Keys.Where(k => !(k.StartsWith(Checkpoints.Checkpoint.ModelPrefix, StringComparison.Ordinal) && model.ContainsKey(k[Checkpoints.Checkpoint.ModelPrefix.Length..]))
            && !k.StartsWith(Checkpoints.Checkpoint.OptimizerPrefix, StringComparison.Ordinal)).ToList();
        if (unknown.Count > 0) throw new InvalidDataException($"state names {unknown.Count} tensor(s) this model does not have (first: {unknown[0]})");
        var missing = model.Keys.Where(k => !state.ContainsKey(Checkpoints.Checkpoint.ModelPrefix + k)).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"state lacks {missing.Count} model tensor(s) (first: {missing[0]})");
        foreach (var (name, target) in model)
        {
            var source = state[Checkpoints.Checkpoint.ModelPrefix + name];
            if (!source.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"state for '{name}' has shape [{string.Join(", ", source.shape)}], the model [{string.Join(", ", target.shape)}]");
        }
        var optimizer = state.Where(kv => kv.Key.StartsWith(Checkpoints.Checkpoint.OptimizerPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[Checkpoints.Checkpoint.OptimizerPrefix.Length..], kv => kv.Value);
        Optimizer.LoadState(optimizer, replace: true); // checks everything before it changes anything
        using (no_grad())
        {
            foreach (var (name, target) in model) target.copy_(state[Checkpoints.Checkpoint.ModelPrefix + name]);
        }
    }

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
    /// holds NaN or infinity.</summary>
    public void Step(double learningRate)
    {
        long start = Mark();
        try
        {
            using (var scope = NewDisposeScope())
            {
                var bad = Parameters.FirstOrDefault(p => p.Parameter.grad is { } g && !isfinite(g).all().item<bool>());
                if (bad.Parameter is not null) throw new NonFiniteGradientException($"the gradient of {bad.Name} has non-finite values");
            }
            Optimizer.Step(learningRate);
        }
        finally
        {
            _optimizerMs += Ms(start, Mark());
        }
    }

    private void ReleaseGraph()
    {
        _graph?.Dispose();
        _graph = null;
        _cached?.Images.Dispose();
        _cached = null;
    }

    private sealed record CachedShard(Tensor Images, (long Index, int View)[] Views, long Epoch, int[] Chunks);

    public void Dispose()
    {
        ReleaseGraph();
        DropExactSums();
        if (!_ownsModel) return;
        Optimizer.Dispose();
        Network.Dispose();
    }
}
