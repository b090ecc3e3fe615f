using System.Numerics;
using System.Runtime.InteropServices;

namespace SimClr.Core.Collectives;

/// <summary>The star's reduction (every gradient to one place, the sum back) and the non-finite count both reductions
/// use: host arithmetic on flat gradients, no torch.</summary>
public static class GradientSum
{
    /// <summary>NaN and infinite values among float32 bytes.</summary>
    public static long CountNonFinite(ReadOnlySpan<byte> float32)
    {
        long bad = 0;
        foreach (float v in MemoryMarshal.Cast<byte, float>(float32))
            if (!float.IsFinite(v)) bad++;
        return bad;
    }

    /// <summary>
    /// Element-wise sum of the replicas' flat gradients in float64, rounded to float32 once: float32 (or exactly summed
    /// float64) partials add up without rounding in float64, so the result does not depend on how the step's groups
    /// were spread over the replicas (see <see cref="GradientBytes"/>).
    /// </summary>
    /// <param name="nonFinite">NaN and infinite values in the result (counted while rounding, not in a pass of its own).</param>
    public static byte[] Sum(IReadOnlyList<GradientBytes?> gradients, IReadOnlyList<string> from, out long nonFinite)
    {
        long count = gradients[0]?.Count ?? 0;
        for (int w = 0; w < gradients.Count; w++)
        {
            if (gradients[w] is not { } g || g.Count != count || g.Data.Length % g.ElementSize != 0)
                throw new InvalidDataException($"{from[w]} sent a gradient of {gradients[w]?.Count ?? 0} values, {from[0]} {count}");
        }
        var total = new double[count];
        var sums = MemoryMarshal.Cast<double, Vector<double>>(total.AsSpan());
        int tail = sums.Length * Vector<double>.Count;
        foreach (var g in gradients)
        {
            if (g!.Float64)
            {
                var values = MemoryMarshal.Cast<byte, double>(g.Data);
                var vectors = MemoryMarshal.Cast<double, Vector<double>>(values);
                for (int i = 0; i < sums.Length; i++) sums[i] += vectors[i];
                for (int i = tail; i < total.Length; i++) total[i] += values[i];
            }
            else
            {
                var values = MemoryMarshal.Cast<byte, float>(g.Data);
                int i = 0;
                for (; i + Vector<float>.Count <= values.Length; i += Vector<float>.Count)
                {
                    Vector.Widen(new Vector<float>(values.Slice(i, Vector<float>.Count)), out var low, out var high);
                    sums[i / Vector<double>.Count] += low;
                    sums[(i / Vector<double>.Count) + 1] += high;
                }
                for (; i < values.Length; i++) total[i] += values[i];
            }
        }
        return GradientBytes.Round(total, out nonFinite);
    }
}
