namespace SimClr.Core.Collectives;

/// <summary>
/// A replica's local gradient, flat over the parameters in state order: float32, or float64 when the replica summed
/// several forward passes (chunks) itself, so that the gradient sum of a step is exact whoever summed what: float32
/// partials summed in float64 need no rounding (with rare exceptions at the last float64 bit, far below float32's),
/// and the total is rounded to float32 once.
/// </summary>
public sealed record GradientBytes(byte[] Data, bool Float64)
{
    public int ElementSize => Float64 ? 8 : 4;

    public long Count => Data.Length / ElementSize;

    /// <summary>The gradient as float32 bytes (rounded when it is float64).</summary>
    public byte[] ToFloat32() => Float64 ? Round(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(Data), out _) : Data;

    /// <summary>float64 values rounded to float32 bytes, counting the NaN and infinite results on the way.</summary>
    public static byte[] Round(ReadOnlySpan<double> values, out long nonFinite)
    {
        var rounded = new byte[values.Length * 4];
        nonFinite = RoundInto(values, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rounded.AsSpan()));
        return rounded;
    }

    /// <summary>float64 values rounded into <paramref name="target"/>; returns the NaN and infinite results.</summary>
    public static long RoundInto(ReadOnlySpan<double> values, Span<float> target)
    {
        long nonFinite = 0;
        for (int i = 0; i < values.Length; i++)
        {
            target[i] = (float)values[i];
            if (!float.IsFinite(target[i])) nonFinite++;
        }
        return nonFinite;
    }
}
