using SimClr.Core.Randomness;

namespace SimClr.Core.Data;

/// <summary>
/// The order of images in an epoch: a permutation that is a pure function of (seed, epoch), so a resumed or
/// distributed run visits the same images in the same batches. Batches are whole (the tail is dropped, as SimCLR does).
/// </summary>
public sealed class EpochSampler(int count, int batchSize, ulong seed)
{
    public int Count { get; } = count > 0 ? count : throw new ArgumentOutOfRangeException(nameof(count), count, "need at least one image");

    public int BatchSize { get; } = batchSize > 0 && batchSize <= count
        ? batchSize
        : throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"batch size must be in 1..{count} (the data set's size)");

    public ulong Seed { get; } = seed;

    public int BatchesPerEpoch => Count / BatchSize;

    public long[] Permutation(long epoch)
    {
        var order = new long[Count];
        for (int i = 0; i < Count; i++) order[i] = i;
        var rng = new CounterRng(Seed, (ulong)epoch, 0x53414D504C45UL);
        for (int i = Count - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The data-set indices of batch <paramref name="batch"/> of <paramref name="epoch"/>.</summary>
    public long[] Batch(long epoch, int batch)
    {
        if (batch < 0 || batch >= BatchesPerEpoch) throw new ArgumentOutOfRangeException(nameof(batch), batch, $"an epoch has {BatchesPerEpoch} batches");
        return Permutation(epoch).AsSpan(batch * BatchSize, BatchSize).ToArray();
    }
}
