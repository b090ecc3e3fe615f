using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>A chunked Forward's input, kept for its backward: the uint8 images on the device, the views, and the chunks.</summary>
internal sealed record CachedShard(Tensor Images, (long Index, int View)[] Views, long Epoch, int[] Chunks);

/// <summary>
/// The backward of a chunked forward (gradient caching): each chunk is re-forwarded with a graph and back-propagated
/// with its slice of dL/dz; the chunks' gradients are summed in float64 and rounded once (see
/// <see cref="Collectives.GradientBytes"/>), so the same groups summed by one replica or by several give the same bits.
/// </summary>
internal static class ChunkedBackward
{
    /// <summary>Leaves the rounded sum in the parameters' gradients and returns the float64 sums (the caller owns them).
    /// <paramref name="emit"/> runs after each stage of the last chunk's backward (only its gradients end there).</summary>
    public static List<Tensor> Run(ModelReplica replica, CachedShard cached, Tensor projectionGradient, Action<int, List<Tensor>?>? emit)
    {
        if (projectionGradient.dim() != 2 || projectionGradient.shape[0] != cached.Views.Length)
            throw new ArgumentException($"dL/dz has shape [{string.Join(", ", projectionGradient.shape)}] for {cached.Views.Length} views");
        // The no-graph pass already moved the BN running statistics once per chunk; the re-forward must not again.
        var buffers = replica.Network.named_buffers().Select(b => (b.buffer, Saved: b.buffer.clone())).ToList();
        List<Tensor>? sums = replica.Parameters.Select(p => zeros(p.Parameter.shape, ScalarType.Float64, p.Parameter.device).DetachFromDisposeScope()).ToList();
        try
        {
            int offset = 0;
            for (int c = 0; c < cached.Chunks.Length; c++)
            {
                int size = cached.Chunks[c];
                bool last = c == cached.Chunks.Length - 1;
                using var scope = NewDisposeScope();
                long start = replica.Timer.Mark();
                var batch = replica.Augmenter.Views(cached.Images.narrow(0, offset, size), cached.Views.AsSpan(offset, size), cached.Epoch);
                var graph = StagedGraph.Forward(replica.Stages, batch);
                replica.Timer.Add(ReplicaPhase.Reforward, start);
                var chunkSums = sums;
                Action<int>? stageDone = last && emit is not null ? stage => emit(stage, chunkSums) : null;
                graph.Backward(projectionGradient.narrow(0, offset, size).to(replica.Device).to_type(graph.Output.dtype), stageDone);
                if (stageDone is null) replica.AccumulateInto(sums, 0, sums.Count);
                offset += size;
            }
            using (no_grad())
            {
                for (int i = 0; i < sums.Count; i++)
                {
                    var p = replica.Parameters[i].Parameter;
                    if (p.grad is null) p.grad = sums[i].to_type(p.dtype).DetachFromDisposeScope();
                    else p.grad.copy_(sums[i]);
                }
            }
            var result = sums;
            sums = null;
            return result;
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
        }
    }
}
