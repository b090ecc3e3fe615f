using SimClr.Core.Data;

namespace SimClr.Core.Tests.Data;

public class LabelFractionTests
{
    private static readonly int[] Labels = Enumerable.Range(0, 1000).Select(i => i * 7 % 10).ToArray();

    [Theory]
    [InlineData(0.01, 1)]
    [InlineData(0.1, 10)]
    [InlineData(1.0, 100)]
    public void Every_class_gets_its_share(double fraction, int perClass)
    {
        int[] subset = LabelFraction.ClassBalanced(Labels, fraction, seed: 1);
        Assert.All(Enumerable.Range(0, 10), k => Assert.Equal(perClass, subset.Count(i => Labels[i] == k)));
        Assert.Equal(subset.Order(), subset);
        Assert.Equal(subset.Length, subset.Distinct().Count());
    }

    [Fact]
    public void Seeded_same_seed_same_subset()
    {
        Assert.Equal(LabelFraction.ClassBalanced(Labels, 0.1, 5), LabelFraction.ClassBalanced(Labels, 0.1, 5));
        Assert.NotEqual(LabelFraction.ClassBalanced(Labels, 0.1, 5), LabelFraction.ClassBalanced(Labels, 0.1, 6));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Impossible_fractions_are_rejected(double fraction) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LabelFraction.ClassBalanced(Labels, fraction, 0));
}
