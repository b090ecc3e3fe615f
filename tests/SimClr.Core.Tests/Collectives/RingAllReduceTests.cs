using System.Runtime.InteropServices;
using System.Threading.Channels;
using SimClr.Core.Collectives;

namespace SimClr.Core.Tests.Collectives;

public sealed class RingAllReduceTests
{
    /// <summary>N ranks in memory: rank r sends into rank r+1's channel.</summary>
    private sealed class MemoryRing
    {
        private readonly Channel<RingPiece>[] _inboxes;

        public MemoryRing(int ranks) => _inboxes = Enumerable.Range(0, ranks).Select(_ => Channel.CreateUnbounded<RingPiece>()).ToArray();

        public Func<RingPiece, RingPiece>? Tamper { get; init; }

        /// <summary>The first failure of any rank (the others then fail because the ring was broken for them).</summary>
        public Exception? FirstFailure;

        public IRingLink Link(int rank) => new MemoryLink(this, rank);

        public void Break(int rank) => _inboxes[rank].Writer.TryComplete(new RingBrokenException($"rank {rank}'s previous worker is gone"));

        private sealed class MemoryLink(MemoryRing ring, int rank) : IRingLink
        {
            public void Send(RingPiece piece) => ring._inboxes[(rank + 1) % ring._inboxes.Length].Writer.TryWrite(ring.Tamper?.Invoke(piece) ?? piece);

            public async ValueTask<RingPiece> ReceiveAsync(CancellationToken cancel)
            {
                try
                {
                    return await ring._inboxes[rank].Reader.ReadAsync(cancel);
                }
                catch (ChannelClosedException e)
                {
                    throw e.InnerException!;
                }
            }
        }
    }

    /// <summary>Gradients like a network's: values over many magnitudes; with <paramref name="float64"/>, exact float64 sums of several float32 chunks.</summary>
    private static GradientBytes Gradient(Random random, int count, bool float64)
    {
        float Value() => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-9, 1)));
        if (!float64) return new GradientBytes(MemoryMarshal.AsBytes(Enumerable.Range(0, count).Select(_ => Value()).ToArray().AsSpan()).ToArray(), false);
        var sums = Enumerable.Range(0, count).Select(_ => (double)Value() + Value() + Value()).ToArray();
        return new GradientBytes(MemoryMarshal.AsBytes(sums.AsSpan()).ToArray(), true);
    }

    private static async Task<RingResult[]> Reduce(IReadOnlyList<GradientBytes> locals, ReducePrecision precision, int pieceElements, MemoryRing? ring = null)
    {
        ring ??= new MemoryRing(locals.Count);
        return await Task.WhenAll(locals.Select((g, r) => Task.Run(async () =>
        {
            try
            {
                return await RingAllReduce.RunAsync(g, r, locals.Count, precision, ring.Link(r), pieceElements);
            }
            catch (RingBrokenException e)
            {
                Interlocked.CompareExchange(ref ring.FirstFailure, e, null);
                for (int other = 0; other < locals.Count; other++) ring.Break(other); // as the coordinator stops the others
                throw;
            }
        })));
    }

    private static float[] Floats(byte[] bytes) => MemoryMarshal.Cast<byte, float>(bytes).ToArray();

    [Theory]
    [InlineData(1, 10, 4)]
    [InlineData(2, 1000, 7)]
    [InlineData(3, 1000, 64)]
    [InlineData(4, 4099, 100)]
    [InlineData(5, 3, 2)] // fewer values than ranks: some segments are empty
    [InlineData(4, 50_000, RingAllReduce.DefaultPieceElements)]
    public async Task Exact_ring_gives_every_rank_the_bits_of_the_coordinators_float64_sum(int ranks, int count, int pieceElements)
    {
        var random = new Random(ranks * 1000 + count);
        var locals = Enumerable.Range(0, ranks).Select(r => Gradient(random, count, float64: r % 2 == 1)).ToList();
        var expected = GradientSum.Sum(locals, [], out long expectedBad);
        var results = await Reduce(locals, ReducePrecision.Exact, pieceElements);
        foreach (var result in results)
        {
            Assert.Equal(expected, result.Sum); // the star's bits: the ring's order and size do not matter
            Assert.Equal(0, result.NonFinite);
        }
        Assert.Equal(0, expectedBad);
        if (ranks > 1 && locals.All(l => !l.Float64))
            Assert.All(results, r => Assert.Equal(RingAllReduce.BytesPerWorker(count, ranks, ReducePrecision.Exact, RingElement.Float32), r.BytesSent, 2.0 * ranks * 8));
    }

    [Fact]
    public async Task Exact_sums_agree_across_ring_sizes_as_when_a_worker_is_lost_and_its_groups_spread_over_the_others()
    {
        // six groups' float32 gradients, summed by 3 workers (2 groups each, float64 partials) or 2 workers (3 each)
        var random = new Random(7);
        var groups = Enumerable.Range(0, 6).Select(_ => Gradient(random, 5000, float64: false)).ToList();
        GradientBytes Partial(IEnumerable<GradientBytes> of) => new(SumToFloat64(of), true);
        var three = await Reduce([Partial(groups.Take(2)), Partial(groups.Skip(2).Take(2)), Partial(groups.Skip(4))], ReducePrecision.Exact, 333);
        var two = await Reduce([Partial(groups.Take(3)), Partial(groups.Skip(3))], ReducePrecision.Exact, 1000);
        Assert.Equal(three[0].Sum, two[0].Sum);
        Assert.Equal(GradientSum.Sum(groups, [], out _), two[1].Sum);
    }

    private static byte[] SumToFloat64(IEnumerable<GradientBytes> of)
    {
        var list = of.ToList();
        var total = new double[list[0].Count];
        foreach (var g in list)
        {
            var values = MemoryMarshal.Cast<byte, float>(g.Data);
            for (int i = 0; i < total.Length; i++) total[i] += values[i];
        }
        return MemoryMarshal.AsBytes(total.AsSpan()).ToArray();
    }

    [Theory]
    [InlineData(ReducePrecision.Float32, 4 * 6e-8)] // N x 2^-24
    [InlineData(ReducePrecision.Bfloat16, 4 * 4e-3)] // N x 2^-8
    public async Task Lossy_precisions_agree_on_every_rank_and_stay_close_to_the_exact_sum(ReducePrecision precision, double tolerance)
    {
        var random = new Random(11);
        var locals = Enumerable.Range(0, 4).Select(_ => Gradient(random, 3000, float64: false)).ToList();
        var exact = Floats(GradientSum.Sum(locals, [], out _));
        var results = await Reduce(locals, precision, 250);
        foreach (var result in results) Assert.Equal(results[0].Sum, result.Sum); // one result for the whole ring
        var sum = Floats(results[0].Sum);
        var values = locals.Select(l => Floats(l.Data)).ToList();
        // error relative to the sum of the addends' magnitudes (the scale a rounding error of any partial sum has)
        double worst = exact.Select((e, i) => Math.Abs(e - sum[i]) / Math.Max(values.Sum(v => Math.Abs(v[i])), float.Epsilon)).Max();
        Assert.True(worst <= tolerance, $"{precision}: relative error {worst:E2} > {tolerance:E1}");
        Assert.True(worst > 0, "rounding partial sums changes some values"); // the lossy path really ran, and the exact tests can tell
        long bytes = RingAllReduce.BytesPerWorker(3000, 4, precision, RingElement.Float32);
        Assert.Equal(bytes, results[0].BytesSent, 2.0 * 4 * 4);
        Assert.True(bytes < RingAllReduce.BytesPerWorker(3000, 4, ReducePrecision.Exact, RingElement.Float32));
    }

    [Fact]
    public async Task Non_finite_values_are_counted_once_over_the_ring()
    {
        var random = new Random(3);
        var locals = Enumerable.Range(0, 3).Select(_ => Gradient(random, 900, float64: false)).ToList();
        var poisoned = Floats(locals[1].Data);
        poisoned[5] = float.NaN;
        poisoned[450] = float.PositiveInfinity;
        poisoned[899] = float.NaN;
        locals[1] = new GradientBytes(MemoryMarshal.AsBytes(poisoned.AsSpan()).ToArray(), false);
        var results = await Reduce(locals, ReducePrecision.Exact, 100);
        Assert.Equal(3, results.Sum(r => r.NonFinite));
    }

    [Fact]
    public async Task A_broken_link_or_a_wrong_piece_is_a_RingBrokenException()
    {
        var random = new Random(5);
        var locals = Enumerable.Range(0, 3).Select(_ => Gradient(random, 600, float64: false)).ToList();
        var ring = new MemoryRing(3);
        ring.Break(2);
        var broken = await Assert.ThrowsAsync<RingBrokenException>(() => RingAllReduce.RunAsync(locals[2], 2, 3, ReducePrecision.Exact, ring.Link(2), 100));
        Assert.Contains("gone", broken.Message);

        var tampered = new MemoryRing(3) { Tamper = p => p.Segment == 1 && p.Phase == 0 ? p with { Piece = p.Piece + 1 } : p };
        await Assert.ThrowsAsync<RingBrokenException>(() => Reduce(locals, ReducePrecision.Exact, 100, tampered));
        Assert.Contains("expected bucket 0 reduce-scatter segment 1 piece 0", tampered.FirstFailure!.Message);
    }

    /// <summary>The ring in buckets (the worker's overlap with backward), bucket b's values handed over after a delay
    /// that differs between ranks, as backward finishes them at different times.</summary>
    private static async Task<RingResult[]> ReduceInBuckets(IReadOnlyList<GradientBytes> locals, IReadOnlyList<RingBucket> buckets, ReducePrecision precision,
        int pieceElements, MemoryRing? ring = null)
    {
        ring ??= new MemoryRing(locals.Count);
        return await Task.WhenAll(locals.Select((g, r) => Task.Run(async () =>
        {
            async ValueTask<GradientBytes> Bucket(int b, CancellationToken cancel)
            {
                await Task.Delay((r * 7 + b * 3) % 11, cancel);
                var bucket = buckets[b];
                return new GradientBytes(g.Data.AsSpan((int)(bucket.Offset * g.ElementSize), (int)(bucket.Count * g.ElementSize)).ToArray(), g.Float64);
            }
            try
            {
                return await RingAllReduce.RunAsync(buckets, Bucket, r, locals.Count, precision, ring.Link(r), pieceElements);
            }
            catch (RingBrokenException e)
            {
                Interlocked.CompareExchange(ref ring.FirstFailure, e, null);
                for (int other = 0; other < locals.Count; other++) ring.Break(other);
                throw;
            }
        })));
    }

    /// <summary>Buckets over <paramref name="count"/> values, last values first (as backward finishes them).</summary>
    private static RingBucket[] Buckets(long count, params long[] sizes)
    {
        var buckets = new List<RingBucket>();
        long end = count;
        foreach (long size in sizes.Append(count - sizes.Sum()))
        {
            buckets.Add(new RingBucket(end - size, size));
            end -= size;
        }
        return [.. buckets];
    }

    [Theory]
    [InlineData(1, 1000, 64)]
    [InlineData(2, 1000, 64)]
    [InlineData(3, 4099, 100)]
    [InlineData(4, 4099, 100)]
    public async Task Exact_ring_in_buckets_gives_the_bits_of_one_pass_over_the_whole_gradient(int ranks, int count, int pieceElements)
    {
        var random = new Random(ranks * 31 + count);
        var locals = Enumerable.Range(0, ranks).Select(r => Gradient(random, count, float64: r % 2 == 0)).ToList();
        var whole = await Reduce(locals, ReducePrecision.Exact, pieceElements);
        var buckets = Buckets(count, 300, 2, 500); // uneven, one smaller than the ring
        var bucketed = await ReduceInBuckets(locals, buckets, ReducePrecision.Exact, pieceElements);
        foreach (var result in bucketed) Assert.Equal(whole[0].Sum, result.Sum);
        Assert.Equal(whole.Sum(r => r.BytesSent), bucketed.Sum(r => r.BytesSent), 2.0 * ranks * ranks * 8 * buckets.Length); // segment edges round per bucket
    }

    [Theory]
    [InlineData(ReducePrecision.Float32, 3 * 6e-8)]
    [InlineData(ReducePrecision.Bfloat16, 3 * 4e-3)]
    public async Task Lossy_rings_in_buckets_agree_on_every_rank_and_stay_close_to_the_exact_sum(ReducePrecision precision, double tolerance)
    {
        var random = new Random(17);
        var locals = Enumerable.Range(0, 3).Select(_ => Gradient(random, 3000, float64: false)).ToList();
        var exact = Floats(GradientSum.Sum(locals, [], out _));
        var results = await ReduceInBuckets(locals, Buckets(3000, 1000, 1000), precision, 128);
        foreach (var result in results) Assert.Equal(results[0].Sum, result.Sum);
        var sum = Floats(results[0].Sum);
        var values = locals.Select(l => Floats(l.Data)).ToList();
        double worst = exact.Select((e, i) => Math.Abs(e - sum[i]) / Math.Max(values.Sum(v => Math.Abs(v[i])), float.Epsilon)).Max();
        Assert.InRange(worst, double.Epsilon, tolerance);
    }

    [Fact]
    public async Task A_piece_of_another_bucket_or_buckets_that_do_not_tile_the_gradient_are_refused()
    {
        var random = new Random(23);
        var locals = Enumerable.Range(0, 3).Select(_ => Gradient(random, 900, float64: false)).ToList();
        var tampered = new MemoryRing(3) { Tamper = p => p.Bucket == 1 && p.Phase == 1 ? p with { Bucket = 2 } : p };
        await Assert.ThrowsAsync<RingBrokenException>(() => ReduceInBuckets(locals, Buckets(900, 300, 300), ReducePrecision.Exact, 64, tampered));
        Assert.Contains("expected bucket 1 all-gather", tampered.FirstFailure!.Message);

        var gap = new[] { new RingBucket(500, 400), new RingBucket(0, 499) };
        await Assert.ThrowsAsync<ArgumentException>(() => RingAllReduce.RunAsync(gap, (_, _) => ValueTask.FromResult(locals[0]), 0, 1, ReducePrecision.Exact, new MemoryRing(1).Link(0)));
    }

    [Fact]
    public void Bfloat16_rounds_to_nearest_even_and_keeps_nan()
    {
        Assert.Equal(1f, RingAllReduce.FromBfloat16(RingAllReduce.ToBfloat16(1f)));
        Assert.Equal(1f, RingAllReduce.FromBfloat16(RingAllReduce.ToBfloat16(1.00390625f))); // halfway, to even
        Assert.Equal(1.0078125f, RingAllReduce.FromBfloat16(RingAllReduce.ToBfloat16(1.005f)));
        Assert.True(float.IsNaN(RingAllReduce.FromBfloat16(RingAllReduce.ToBfloat16(float.NaN))));
        Assert.Equal(float.PositiveInfinity, RingAllReduce.FromBfloat16(RingAllReduce.ToBfloat16(float.PositiveInfinity)));
    }
}
