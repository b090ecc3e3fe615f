using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>
/// Splits a global batch of B images (2B views) over N workers into G BatchNorm groups: G = N x C for C chunks per
/// worker, or a fixed G (<see cref="BatchingOptions.Groups"/>) whatever N. Images are cut into G contiguous groups; with <see cref="BatchNormGroups.Local"/> slot s holds both views
/// of group s; with <see cref="BatchNormGroups.Cross"/> slot s holds view 0 of group s and view 1 of group s - 1
/// (mod G), so the two views of an image never share a BN batch and every slot is about 2B/G rows. Worker w takes
/// slots wG/N .. (w+1)G/N - 1 (wC .. wC + C - 1 when G = N x C), one chunk each. The slots depend on (batch, G, mode)
/// only, so with G fixed the same views meet in the same BN batches over any number of workers.
/// </summary>
public static class ShardPlan
{
    /// <summary>The grouping a step actually uses: one view per image has no pairs to separate (local); auto is cross
    /// when the step is split.</summary>
    public static BatchNormGroups Resolve(BatchNormGroups mode, int groups, int viewsPerImage = 2) =>
        viewsPerImage == 1 ? BatchNormGroups.Local
        : mode == BatchNormGroups.Auto ? (groups > 1 ? BatchNormGroups.Cross : BatchNormGroups.Local) : mode;

    /// <summary>The plan for <paramref name="batching"/>'s chunks or fixed groups.</summary>
    public static IReadOnlyList<ShardRows> Build(ReadOnlySpan<long> batch, int workers, BatchingOptions batching, int viewsPerImage = 2) =>
        Build(batch, workers, batching.Chunks, batching.BatchNorm, viewsPerImage, batching.Groups);

    /// <param name="viewsPerImage">2 for SimCLR; 1 for a classifier (one view per image at global row b; BN grouping is moot).</param>
    /// <param name="fixedGroups">&gt; 0: this many groups whatever <paramref name="workers"/> (then <paramref name="chunks"/> is not used).</param>
    public static IReadOnlyList<ShardRows> Build(ReadOnlySpan<long> batch, int workers, int chunks, BatchNormGroups mode, int viewsPerImage = 2, int fixedGroups = 0)
    {
        if (viewsPerImage is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(viewsPerImage), viewsPerImage, "1 or 2 views per image");
        if (workers < 1 || chunks < 1 || fixedGroups < 0) throw new ArgumentOutOfRangeException(nameof(workers), "workers and chunks must be >= 1, groups >= 0");
        int groups = fixedGroups > 0 ? fixedGroups : workers * chunks;
        if (groups < workers)
            throw new ConfigException($"batching.groups ({groups}) is smaller than the {workers} workers: each worker needs at least one group; raise batching.groups");
        if (batch.Length < groups)
            throw new ConfigException(fixedGroups > 0
                ? $"a batch of {batch.Length} images cannot be split into batching.groups = {groups}: lower batching.groups"
                : $"a batch of {batch.Length} images cannot be split over {workers} worker(s) x {chunks} chunk(s): lower batching.chunks or use fewer workers");
        mode = Resolve(mode, groups, viewsPerImage);
        if (mode == BatchNormGroups.Cross && groups == 1)
            throw new ConfigException("batching.batchNorm cross needs the step split over at least 2 workers or chunks (batching.chunks >= 2)");

        var slots = new List<(long Index, int View, int Row)>[groups];
        for (int s = 0; s < groups; s++)
        {
            slots[s] = [];
            var (start, end) = Group(batch.Length, groups, s);
            if (viewsPerImage == 1)
            {
                for (int b = start; b < end; b++) slots[s].Add((batch[b], 0, b));
            }
            else if (mode == BatchNormGroups.Local)
            {
                for (int b = start; b < end; b++)
                {
                    slots[s].Add((batch[b], 0, 2 * b));
                    slots[s].Add((batch[b], 1, 2 * b + 1));
                }
            }
            else
            {
                for (int b = start; b < end; b++) slots[s].Add((batch[b], 0, 2 * b));
                var (previousStart, previousEnd) = Group(batch.Length, groups, (s + groups - 1) % groups);
                for (int b = previousStart; b < previousEnd; b++) slots[s].Add((batch[b], 1, 2 * b + 1));
            }
        }

        var shards = new List<ShardRows>(workers);
        for (int w = 0; w < workers; w++)
        {
            var (first, end) = Group(groups, workers, w);
            var rows = Enumerable.Range(first, end - first).SelectMany(s => slots[s]).ToArray();
            shards.Add(new ShardRows(rows.Select(r => r.Index).ToArray(), rows.Select(r => r.View).ToArray(), rows.Select(r => r.Row).ToArray(),
                Enumerable.Range(first, end - first).Select(s => slots[s].Count).ToArray()));
        }
        return shards;
    }

    private static (int Start, int End) Group(int count, int groups, int g) =>
        ((int)((long)count * g / groups), (int)((long)count * (g + 1) / groups));
}
