using System.Runtime.InteropServices;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Protocol;
using static TorchSharp.torch;

namespace SimClr.Coordinator;

/// <summary>The outcome of one distributed step.</summary>
public sealed record StepOutcome(double Loss, string Checksum);

/// <summary>
/// One SimCLR step over N workers (ARCHITECTURE.md, "one pre-training step"): split the global batch into shards,
/// gather the projections, compute the global NT-Xent and dL/dz here, scatter each worker its slice, gather the
/// local gradients and SUM them (the global loss is one mean over all 2B views, so its parameter gradient is the
/// sum of the shards' contributions), then have every replica apply the same step and compare their checksums.
/// </summary>
public sealed class DistributedStep(IReadOnlyList<WorkerClient> workers, NtXentLoss loss)
{
    public async Task<StepOutcome> RunAsync(ImageDataSet data, long[] indices, long epoch, long step, double learningRate, CancellationToken cancel = default)
    {
        if (indices.Length < workers.Count) throw new ArgumentException($"{indices.Length} images cannot be split over {workers.Count} workers");
        // shard by whole images, both views of an image in the same shard (local BN); rows stay interleaved
        var shards = Enumerable.Range(0, workers.Count).Select(w =>
        {
            int start = (int)((long)indices.Length * w / workers.Count), end = (int)((long)indices.Length * (w + 1) / workers.Count);
            return indices[start..end];
        }).ToList();

        var forwards = shards.Select((shard, w) =>
        {
            var header = new ShardHeader { Step = step, Epoch = epoch };
            foreach (long i in shard)
            {
                header.Indices.Add(i);
                header.Indices.Add(i);
                header.Views.Add(0);
                header.Views.Add(1);
            }
            using var images = data.Batch(shard).repeat_interleave(2, dim: 0).contiguous();
            return workers[w].ForwardAsync(header, images.shape, images.bytes.ToArray(), cancel);
        }).ToList();
        var projections = await Task.WhenAll(forwards);

        double lossValue;
        byte[][] slices;
        using (var scope = NewDisposeScope())
        {
            var z = cat(projections.Select(ToTensor).ToList(), 0);
            var (value, gradient) = loss.LossAndGradient(z);
            if (!double.IsFinite(value)) throw new InvalidOperationException($"loss is {value} at step {step}; the step was not applied");
            lossValue = value;
            long offset = 0;
            slices = projections.Select(p =>
            {
                var slice = gradient.narrow(0, offset, p.Shape[0]).to_type(ScalarType.Float32).contiguous();
                offset += p.Shape[0];
                return slice.bytes.ToArray();
            }).ToArray();
        }

        var gradients = await Task.WhenAll(workers.Select((worker, w) => worker.BackwardAsync(projections[w].Shape, slices[w], cancel)));
        byte[] reduced = Sum(gradients.Select(g => g.Data).ToList());
        var checksums = await Task.WhenAll(workers.Select(worker => worker.ApplyStepAsync(step, learningRate, reduced, cancel)));
        if (checksums.Distinct().Count() != 1)
            throw new InvalidOperationException($"replicas diverged at step {step}: checksums {string.Join(", ", checksums.Select((c, w) => $"{workers[w].Address} {c}"))}");
        return new StepOutcome(lossValue, checksums[0]);
    }

    private static Tensor ToTensor(TensorChunks.Received received)
    {
        var tensor = empty(received.Shape, ScalarType.Float32);
        received.Data.CopyTo(tensor.bytes);
        return tensor;
    }

    /// <summary>Element-wise float32 sum of the workers' flat gradients (in worker order, so every run sums alike).</summary>
    private static byte[] Sum(IReadOnlyList<byte[]> gradients)
    {
        int length = gradients[0].Length;
        if (gradients.Any(g => g.Length != length)) throw new ProtocolViolation("workers sent gradients of different lengths");
        var total = new float[length / 4];
        foreach (var g in gradients)
        {
            var values = MemoryMarshal.Cast<byte, float>(g);
            for (int i = 0; i < total.Length; i++) total[i] += values[i];
        }
        return MemoryMarshal.AsBytes(total.AsSpan()).ToArray();
    }
}
