using SimClr.Core.Randomness;

namespace SimClr.Core.Data;

/// <summary>Class-balanced, seeded subsets of the labelled images (SimCLR's 1% and 10% label experiments).</summary>
public static class LabelFraction
{
    /// <summary>
    /// Indices of round(fraction x count) images of every class (at least one each), chosen by a seeded shuffle,
    /// returned in ascending order. The same (labels, fraction, seed) always give the same subset.
    /// </summary>
    public static int[] ClassBalanced(IReadOnlyList<int> labels, double fraction, ulong seed)
    {
        if (!(fraction > 0 && fraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "label fraction must be in (0, 1]");
        var chosen = new List<int>();
        foreach (var group in Enumerable.Range(0, labels.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            int[] members = group.ToArray();
            var rng = new CounterRng(seed, (ulong)group.Key, 0x4C4142454CUL);
            for (int i = members.Length - 1; i > 0; i--) // Fisher-Yates
            {
                int j = rng.NextInt(i + 1);
                (members[i], members[j]) = (members[j], members[i]);
            }
            int take = Math.Max(1, (int)Math.Round(fraction * members.Length, MidpointRounding.AwayFromZero));
            chosen.AddRange(members.Take(take));
        }
        chosen.Sort();
        return chosen.ToArray();
    }
}
