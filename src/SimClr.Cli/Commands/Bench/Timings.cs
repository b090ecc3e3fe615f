namespace SimClr.Cli.Commands.Bench;

/// <summary>The summaries the benchmarks print of repeated measurements.</summary>
internal static class Timings
{
    /// <summary>The median: the middle value, or the mean of the two middle ones for an even count.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>The upper median (the value at Count / 2 in order), the least and the largest.</summary>
    public static (double Median, double Min, double Max) Spread(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return (sorted[sorted.Count / 2], sorted[0], sorted[^1]);
    }
}
