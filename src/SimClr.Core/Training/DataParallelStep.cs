using System.Numerics;
using System.Runtime.InteropServices;
using SimClr.Core.Config;
using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>What one step reports: the global loss, and the replicas' common parameter checksum (when compared).</summary>
public sealed record StepOutcome(double Loss, string? Checksum, IReadOnlyDictionary<string, double> Metrics);

/// <summary>The replicas disagree after a step: their parameters are no longer bit-identical.</summary>
public sealed class ReplicaDivergenceException(string message) : Exception(message);

/// <summary>
/// One data-parallel step over N replicas (ARCHITECTURE.md, "one pre-training step"), the same code for one
/// in-process replica and for N gRPC workers, for SimCLR and for classifiers: plan the shards (<see cref="ShardPlan"/>),
/// have every replica augment and forward its views, gather the outputs into the global row order, compute the global
/// loss and its gradient here (<see cref="IStepLoss"/>), hand each replica its rows of the gradient, gather the local
/// parameter gradients, reduce them, and have every replica apply the same step; with N > 1 the replicas' parameter
/// checksums must agree.
///
/// The reduction is the SUM: the loss is one mean over the whole global batch, L(θ) = L(z_1(θ), ..., z_2B(θ)), so by
/// the chain rule dL/dθ = Σ_rows (dL/dz_row)(dz_row/dθ), and a shard's backward of its rows of dL/dz computes exactly
/// its part of that sum. Averaging would divide the gradient by N; the equivalence tests (1, 2, 4 workers, chunks) pin
/// this.
/// </summary>
public sealed class DataParallelStep(IReadOnlyList<IReplicaEndpoint> replicas, IStepLoss loss, BatchingOptions batching)
{
    public IReadOnlyList<IReplicaEndpoint> Replicas { get; } = replicas;

    public BatchNormGroups Mode => loss.ViewsPerImage == 1 ? BatchNormGroups.Local : ShardPlan.Resolve(batching.BatchNorm, Replicas.Count, batching.Chunks);

    /// <summary>Runs a step on the images <paramref name="batch"/> of <paramref name="data"/>; a non-finite loss is returned without a step.</summary>
    public StepOutcome Run(ImageDataSet data, long[] batch, long epoch, long step, double learningRate, CancellationToken cancel = default)
    {
        var plan = ShardPlan.Build(batch, Replicas.Count, batching.Chunks, batching.BatchNorm, loss.ViewsPerImage);
        var projections = Wait(plan.Select((rows, w) =>
        {
            using var images = data.Batch(rows.Indices);
            return Replicas[w].ForwardAsync(new ShardWork(step, epoch, rows, images.shape, images.bytes.ToArray()), cancel);
        }).ToList());
        for (int w = 0; w < plan.Count; w++)
        {
            var shape = projections[w].Shape;
            if (shape.Length != 2 || shape[0] != plan[w].Count || (w > 0 && shape[1] != projections[0].Shape[1]))
                throw new InvalidDataException($"{Replicas[w].Name} answered projections [{string.Join(", ", shape)}] for {plan[w].Count} views");
        }

        double value;
        Dictionary<string, double> metrics;
        FloatBlock[] slices;
        using (var scope = NewDisposeScope())
        {
            var gathered = cat(projections.Select(ToTensor).ToList(), 0);
            var rows = tensor(plan.SelectMany(p => p.GlobalRows).Select(r => (long)r).ToArray());
            var z = zeros_like(gathered).index_copy_(0, rows, gathered); // the global row order the loss expects
            var (lossValue, gradient, stepMetrics) = loss.LossAndGradient(z, batch);
            value = lossValue;
            metrics = stepMetrics;
            if (!double.IsFinite(value)) return new StepOutcome(value, null, metrics);
            var scattered = gradient.index_select(0, rows).to_type(ScalarType.Float32).contiguous();
            long offset = 0;
            slices = plan.Select(p =>
            {
                var slice = scattered.narrow(0, offset, p.Count).contiguous();
                offset += p.Count;
                return new FloatBlock(slice.shape, slice.bytes.ToArray());
            }).ToArray();
        }

        bool single = Replicas.Count == 1;
        var gradients = Wait(Replicas.Select((r, w) => r.BackwardAsync(slices[w], returnGradient: !single, cancel)).ToList());
        byte[]? reduced = single ? null : Sum(gradients!, Replicas);
        var checksums = Wait(Replicas.Select(r => r.ApplyStepAsync(step, learningRate, reduced, checksum: !single, cancel)).ToList());
        if (!single && checksums.Distinct().Count() != 1)
            throw new ReplicaDivergenceException($"replicas diverged at step {step}: parameter checksums "
                + string.Join(", ", checksums.Select((c, w) => $"{Replicas[w].Name} {c}")));
        return new StepOutcome(value, checksums[0], metrics);
    }

    /// <summary>Waits for every call (so none is left running), then rethrows the first failure.</summary>
    private static T[] Wait<T>(List<Task<T>> calls)
    {
        try
        {
            Task.WaitAll(calls);
        }
        catch (AggregateException)
        {
            var failed = calls.First(c => c.IsFaulted || c.IsCanceled);
            failed.GetAwaiter().GetResult();
        }
        return calls.Select(c => c.Result).ToArray();
    }

    private static Tensor ToTensor(FloatBlock block)
    {
        var t = empty(block.Shape, ScalarType.Float32);
        block.Data.CopyTo(t.bytes);
        return t;
    }

    /// <summary>Element-wise float32 sum of the replicas' flat gradients, in replica order (so every run sums alike).</summary>
    public static byte[] Sum(IReadOnlyList<byte[]?> gradients, IReadOnlyList<IReplicaEndpoint> from)
    {
        int length = gradients[0]?.Length ?? 0;
        for (int w = 0; w < gradients.Count; w++)
        {
            if (gradients[w] is not { } g || g.Length != length || length % 4 != 0)
                throw new InvalidDataException($"{from[w].Name} sent a gradient of {gradients[w]?.Length ?? 0} bytes, {from[0].Name} {length}");
        }
        var total = new float[length / 4];
        var sums = MemoryMarshal.Cast<float, Vector<float>>(total.AsSpan());
        int tail = sums.Length * Vector<float>.Count;
        foreach (var g in gradients)
        {
            var values = MemoryMarshal.Cast<byte, float>(g);
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
            for (int i = 0; i < sums.Length; i++) sums[i] += vectors[i];
            for (int i = tail; i < total.Length; i++) total[i] += values[i];
        }
        return MemoryMarshal.AsBytes(total.AsSpan()).ToArray();
    }
}
