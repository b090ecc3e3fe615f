using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Replica;

/// <summary>
/// Backward stage by stage (<see cref="StagedGraph"/>), which tells when a bucket of the gradient is final so the ring
/// can sum it while the earlier stages are still back-propagated: the same bits as one autograd pass, buckets that tile
/// the flat gradient at stage boundaries, and bucket bytes equal to the flat gradient's.
/// </summary>
public sealed class BucketedBackwardTests
{
    private static ModelReplica Replica(int seed, int classes = 0) => TinyReplica.Build(seed, classes);

    private static (long, int)[] Views(int count) => Enumerable.Range(0, count).Select(i => ((long)i / 2, i % 2)).ToArray();

    public static TheoryData<string, int> DevicesAndHeads
    {
        get
        {
            var data = new TheoryData<string, int>();
            foreach (string device in TestDevices.Names()) foreach (int classes in new[] { 0, 10 }) data.Add(device, classes);
            return data;
        }
    }

    /// <summary>Equal bits on the CPU; on cuda within <see cref="TestDevices.Tolerance"/> (cuDNN's backward sums in no fixed order).</summary>
    [Theory]
    [MemberData(nameof(DevicesAndHeads))]
    public void Staged_backward_gives_the_bits_of_one_autograd_pass(string device, int classes)
    {
        using var scope = NewDisposeScope();
        using var staged = TinyReplica.Build(3, classes, device: device);
        using var plain = TinyReplica.Build(3, classes, device: device);
        Assert.True(staged.Stages.Count >= 10); // stem, 8 blocks, pooling (and a head)
        var images = randint(0, 256, [12, 3, 32, 32]).to_type(ScalarType.Byte);
        var z = staged.Forward(images, Views(12), epoch: 1);
        var dz = randn(z.shape, device: TestDevices.Get(device));
        staged.ZeroGrad();
        staged.Backward(dz);

        // the same views through the network as one module, back-propagated by one autograd pass
        plain.Network.train();
        var batch = plain.Augmenter.Views(images.to(TestDevices.Get(device)), Views(12), 1);
        var zPlain = plain.Network.forward(batch);
        TestDevices.AssertSame(device, z, zPlain, "projections");
        plain.ZeroGrad();
        zPlain.backward([dz]);
        foreach (var ((name, a), (_, b)) in staged.Parameters.Zip(plain.Parameters))
            TestDevices.AssertSame(device, a.grad!, b.grad!, $"{name}: the staged gradient against autograd's");
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(4_000L)]
    [InlineData(20_000L)]
    [InlineData(long.MaxValue)]
    public void Buckets_tile_the_flat_gradient_at_stage_boundaries_last_stage_first(long capBytes)
    {
        using var replica = Replica(seed: 1);
        var buckets = replica.Buckets(capBytes);
        Assert.Equal(replica.Stages.Count - 1, buckets[0].LastStage);
        Assert.Equal(0, buckets[^1].FirstStage);
        Assert.Equal(replica.ParameterCount, buckets[0].Offset + buckets[0].Count);
        Assert.Equal(0, buckets[^1].Offset);
        foreach (var (later, earlier) in buckets.Zip(buckets.Skip(1)))
        {
            Assert.Equal(later.FirstStage - 1, earlier.LastStage);
            Assert.Equal(later.Offset, earlier.Offset + earlier.Count);
            Assert.Equal(later.FirstParameter, earlier.EndParameter);
        }
        foreach (var bucket in buckets)
        {
            var stages = replica.Stages.Skip(bucket.FirstStage).Take(bucket.LastStage - bucket.FirstStage + 1).ToList();
            Assert.Equal(stages.Sum(s => s.Parameters.Sum(p => p.numel())), bucket.Count);
            Assert.True(bucket.Count > 0);
            // within the cap, unless one stage alone is larger (a stage without parameters, the pooling, joins a bucket freely)
            if (stages.Count(s => s.Parameters.Count > 0) > 1 && capBytes > 0) Assert.True(bucket.Count * 4 <= capBytes, $"{bucket} exceeds {capBytes} bytes");
        }
        if (capBytes is 0 or long.MaxValue) Assert.Single(buckets);
        if (capBytes == 1) Assert.Equal(replica.Stages.Count(s => s.Parameters.Count > 0), buckets.Count); // a stage each
        if (capBytes == 20_000) Assert.InRange(buckets.Count, 2, replica.Stages.Count - 1);
    }

    [Theory]
    [InlineData(null, 1L)]
    [InlineData(null, 20_000L)]
    [InlineData(new[] { 4, 4, 4 }, 1L)]
    [InlineData(new[] { 5, 7 }, 20_000L)]
    [InlineData(new[] { 5, 7 }, 0L)]
    public void Bucketed_backward_hands_over_the_flat_gradients_bytes_bucket_by_bucket_in_order(int[]? chunks, long capBytes)
    {
        using var scope = NewDisposeScope();
        using var replica = Replica(seed: 7);
        var images = randint(0, 256, [12, 3, 32, 32]).to_type(ScalarType.Byte);
        var dz = randn([12, 8]);

        replica.Forward(images, Views(12), epoch: 1, chunks);
        replica.ZeroGrad();
        replica.Backward(dz);
        var whole = replica.FlatGradient();
        Assert.Equal(chunks is not null, whole.Float64);

        var buckets = replica.Buckets(capBytes);
        var handed = new List<(int Index, GradientBytes Bytes)>();
        replica.Forward(images, Views(12), epoch: 1, chunks);
        replica.ZeroGrad();
        var stem = replica.Parameters[0].Parameter; // the first stage's: back-propagated last
        var stemDoneAt = new List<bool>();
        replica.Backward(dz, buckets, (index, bytes) =>
        {
            handed.Add((index, bytes));
            stemDoneAt.Add(stem.grad is { } g && g.abs().sum().ToDouble() > 0);
        });
        Assert.Equal(Enumerable.Range(0, buckets.Count), handed.Select(h => h.Index));
        // every bucket but the stem's is handed over while backward still has the stem to do: that is the overlap
        Assert.Equal(Enumerable.Range(0, buckets.Count).Select(b => b == buckets.Count - 1 && chunks is null), stemDoneAt);
        foreach (var (index, bytes) in handed)
        {
            Assert.Equal(whole.Float64, bytes.Float64);
            var expected = whole.Data.AsSpan((int)(buckets[index].Offset * whole.ElementSize), (int)(buckets[index].Count * whole.ElementSize));
            Assert.True(expected.SequenceEqual(bytes.Data), $"bucket {index} ({buckets[index]}) differs from the flat gradient");
        }
        Assert.Equal(whole.Data, replica.FlatGradient().Data); // and the replica's own gradient is unchanged by bucketing
    }

    [Fact]
    public void Buckets_that_do_not_cover_the_stages_are_refused()
    {
        using var scope = NewDisposeScope();
        using var replica = Replica(seed: 7);
        var buckets = replica.Buckets(1);
        replica.Forward(randint(0, 256, [4, 3, 32, 32]).to_type(ScalarType.Byte), Views(4), epoch: 1);
        Assert.Throws<ArgumentException>(() => replica.Backward(randn([4, 8]), buckets.Skip(1).ToList(), (_, _) => { }));
    }
}
