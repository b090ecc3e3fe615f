using SimClr.Core.Data;

namespace SimClr.Core.Tests.Data;

public class EpochSamplerTests
{
    [Fact]
    public void Each_epoch_is_a_permutation_fixed_by_seed_and_epoch()
    {
        var sampler = new EpochSampler(100, 32, seed: 4);
        var epoch0 = sampler.Permutation(0);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), epoch0.Order());
        Assert.Equal(epoch0, new EpochSampler(100, 32, seed: 4).Permutation(0));
        Assert.NotEqual(epoch0, sampler.Permutation(1));
        Assert.NotEqual(epoch0, new EpochSampler(100, 32, seed: 5).Permutation(0));
    }

    [Fact]
    public void Batches_are_whole_and_consecutive_slices_of_the_permutation()
    {
        var sampler = new EpochSampler(100, 32, seed: 1);
        Assert.Equal(3, sampler.BatchesPerEpoch);
        Assert.Equal(sampler.Permutation(2)[32..64], sampler.Batch(2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Batch(0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EpochSampler(10, 11, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EpochSampler(10, 0, 0));
    }
}
