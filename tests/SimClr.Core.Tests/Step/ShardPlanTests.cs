using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Core.Tests.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Step;

public class ShardPlanTests
{
    private static long[] Batch(int size) => Enumerable.Range(0, size).Select(i => 1000L + 7 * i).ToArray();

    public static TheoryData<int, int, int> Splits()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int batch in new[] { 4, 7, 16, 33 })
            foreach (int workers in new[] { 1, 2, 3, 4 })
                foreach (int chunks in new[] { 1, 2, 4 })
                    if (workers * chunks <= batch) data.Add(batch, workers, chunks);
        return data;
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void Every_view_is_placed_once_at_its_interleaved_global_row(int size, int workers, int chunks)
    {
        var batch = Batch(size);
        foreach (var mode in new[] { BatchNormGroups.Local, BatchNormGroups.Auto })
        {
            if (workers * chunks == 1 && mode == BatchNormGroups.Cross) continue;
            var plan = ShardPlan.Build(batch, workers, chunks, mode);
            Assert.Equal(workers, plan.Count);
            var rows = plan.SelectMany(p => p.GlobalRows).ToArray();
            Assert.Equal(Enumerable.Range(0, 2 * size), rows.Order()); // a permutation of 0 .. 2B-1
            foreach (var shard in plan)
            {
                Assert.Equal(chunks, shard.ChunkSizes.Length);
                Assert.Equal(shard.Count, shard.ChunkSizes.Sum());
                Assert.All(shard.ChunkSizes, c => Assert.True(c >= 1));
                for (int r = 0; r < shard.Count; r++)
                {
                    // global row 2b + v holds image b's view v
                    Assert.Equal(batch[shard.GlobalRows[r] / 2], shard.Indices[r]);
                    Assert.Equal(shard.GlobalRows[r] % 2, shard.Views[r]);
                }
            }
            // shards are balanced: at most a few rows apart
            Assert.True(plan.Max(p => p.Count) - plan.Min(p => p.Count) <= 2 * chunks + 2);
        }
    }

    [Theory]
    [InlineData(16, 6, BatchNormGroups.Auto)]
    [InlineData(33, 4, BatchNormGroups.Local)]
    [InlineData(9, 9, BatchNormGroups.Cross)]
    public void With_fixed_groups_any_number_of_workers_gets_the_same_BatchNorm_batches_in_the_same_order(int size, int groups, BatchNormGroups mode)
    {
        // what a lost worker relies on: the step redone over fewer workers forwards exactly the same batches
        var batch = Batch(size);
        List<(long, int, int)[]> Chunks(IReadOnlyList<ShardRows> plan) => plan.SelectMany(shard =>
        {
            int offset = 0;
            return shard.ChunkSizes.Select(c =>
            {
                var rows = Enumerable.Range(offset, c).Select(r => (shard.Indices[r], shard.Views[r], shard.GlobalRows[r])).ToArray();
                offset += c;
                return rows;
            }).ToList();
        }).ToList();
        var reference = Chunks(ShardPlan.Build(batch, 1, new BatchingOptions { Groups = groups, BatchNorm = mode }));
        Assert.Equal(groups, reference.Count);
        for (int workers = 2; workers <= groups; workers++)
        {
            var plan = ShardPlan.Build(batch, workers, new BatchingOptions { Groups = groups, BatchNorm = mode });
            Assert.Equal(workers, plan.Count);
            Assert.All(plan, shard => Assert.InRange(shard.ChunkSizes.Length, groups / workers, (groups + workers - 1) / workers));
            var chunks = Chunks(plan);
            Assert.Equal(reference.Count, chunks.Count);
            for (int g = 0; g < groups; g++) Assert.Equal(reference[g], chunks[g]);
        }
        var e = Assert.Throws<ConfigException>(() => ShardPlan.Build(batch, groups + 1, new BatchingOptions { Groups = groups }));
        Assert.Contains("raise batching.groups", e.Message);
    }

    [Fact]
    public void The_gradient_sum_is_the_same_bits_however_the_groups_were_spread_over_replicas()
    {
        // six groups' float32 gradients of very different magnitudes, summed as 1 x 6, 2 x 3, 3 x 2 and 6 x 1
        var random = new Random(4);
        var groups = Enumerable.Range(0, 6).Select(g => Enumerable.Range(0, 1003)
            .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-8, 3)))).ToArray()).ToArray();
        GradientBytes Partial(IEnumerable<float[]> part)
        {
            var list = part.ToList();
            if (list.Count == 1) return new GradientBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(list[0].AsSpan()).ToArray(), Float64: false);
            var sums = new double[list[0].Length];
            foreach (var g in list)
                for (int i = 0; i < sums.Length; i++) sums[i] += g[i];
            return new GradientBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(sums.AsSpan()).ToArray(), Float64: true);
        }
        byte[] SumOver(int replicas)
        {
            var partials = Enumerable.Range(0, replicas).Select(r => Partial(groups.Skip(r * 6 / replicas).Take(((r + 1) * 6 / replicas) - (r * 6 / replicas)))).ToList();
            return GradientSum.Sum(partials, partials.Select((_, r) => $"r{r}").ToList(), out _);
        }
        var one = SumOver(1);
        foreach (int replicas in new[] { 2, 3, 6 }) Assert.Equal(one, SumOver(replicas));
        // and it is the correctly rounded sum, not a float32 running sum
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(one);
        for (int i = 0; i < values.Length; i++) Assert.Equal((float)groups.Sum(g => (double)g[i]), values[i]);
        int differs = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (groups.Aggregate(0f, (a, g) => a + g[i]) != values[i]) differs++;
        }
        Assert.True(differs > 0, "the data should be hard enough that float32 running sums round differently somewhere");
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void In_cross_mode_no_BatchNorm_batch_holds_both_views_of_an_image(int size, int workers, int chunks)
    {
        if (workers * chunks == 1) return; // one batch cannot separate anything: Build refuses (next test)
        var plan = ShardPlan.Build(Batch(size), workers, chunks, BatchNormGroups.Auto); // auto is cross when split
        foreach (var shard in plan)
        {
            int offset = 0;
            foreach (int chunk in shard.ChunkSizes) // each chunk is one forward pass: one BN batch
            {
                var images = shard.Indices.AsSpan(offset, chunk).ToArray();
                Assert.Equal(images.Length, images.Distinct().Count());
                offset += chunk;
            }
        }
        // and local mode keeps both views together, as the seed does
        var local = ShardPlan.Build(Batch(size), workers, chunks, BatchNormGroups.Local);
        Assert.All(local, shard => Assert.Equal(shard.Count / 2, shard.Indices.Distinct().Count()));
    }

    [Fact]
    public void Impossible_splits_are_refused_with_what_to_change()
    {
        var e = Assert.Throws<ConfigException>(() => ShardPlan.Build(Batch(4), 1, 1, BatchNormGroups.Cross));
        Assert.Contains("batching.chunks >= 2", e.Message);
        e = Assert.Throws<ConfigException>(() => ShardPlan.Build(Batch(3), 2, 2, BatchNormGroups.Auto));
        Assert.Contains("cannot be split", e.Message);
    }

    [Fact]
    public void Each_chunk_is_its_own_BatchNorm_batch_and_the_cached_backward_matches_chunks_done_with_a_graph()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var images = randint(0, 256, [12, 3, 32, 32]).to_type(ScalarType.Byte);
        var views = Enumerable.Range(0, 12).Select(i => ((long)i, i % 2)).ToArray();
        int[] chunks = [5, 3, 4];
        var dz = randn(12, 8);

        using var cached = Replica();
        var z = cached.Forward(images, views, epoch: 1, chunks);
        cached.ZeroGrad();
        cached.Backward(dz);

        // the reference: each chunk forwarded with batch statistics on its own, with a graph, and back-propagated
        using var plain = Replica();
        plain.ZeroGrad();
        int offset = 0;
        foreach (int size in chunks)
        {
            var zc = plain.Forward(images.narrow(0, offset, size), views.AsSpan(offset, size), epoch: 1);
            Assert.True(zc.allclose(z.narrow(0, offset, size), rtol: 1e-5, atol: 1e-6), $"chunk at {offset}: outputs differ");
            plain.Backward(dz.narrow(0, offset, size));
            offset += size;
        }
        var expected = plain.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        foreach (var (name, p) in cached.Network.named_parameters())
            Assert.True(p.grad!.allclose(expected[name], rtol: 1e-4, atol: 1e-6), $"{name}: gradients differ");
        // the re-forward did not move the BN running statistics a second time
        foreach (var ((name, a), (_, b)) in cached.Network.named_buffers().Zip(plain.Network.named_buffers()))
            Assert.True(a.to_type(ScalarType.Float64).allclose(b.to_type(ScalarType.Float64), rtol: 1e-5, atol: 1e-6), $"{name}: running statistics differ");
    }

    private static ModelReplica Replica() => TinyReplica.Build(21);
}
