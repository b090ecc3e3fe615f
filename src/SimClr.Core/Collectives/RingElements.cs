using System.Numerics;
using System.Runtime.InteropServices;

namespace SimClr.Core.Collectives;

/// <summary>The one conversion between the ring's element types (<see cref="RingElement"/>) its arithmetic uses.</summary>
internal static class RingElements
{
    /// <summary>bfloat16 values widened into <paramref name="target"/> (float32), counting non-finite ones.</summary>
    internal static long WidenBfloat16(byte[] bfloat16, Span<float> target)
    {
        Load(bfloat16, RingElement.Bfloat16, target, add: false);
        return GradientSum.CountNonFinite(MemoryMarshal.AsBytes(target));
    }

    internal static byte[] Bfloat16Bytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 2];
        var halves = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (int i = 0; i < values.Length; i++) halves[i] = RingAllReduce.ToBfloat16(values[i]);
        return bytes;
    }

    /// <summary>Values stored as <paramref name="element"/> into <paramref name="into"/> (float64, or float32 rounding to
    /// nearest), or added to what it holds: the one conversion the ring's arithmetic uses.</summary>
    internal static void Load<T>(ReadOnlySpan<byte> bytes, RingElement element, Span<T> into, bool add)
        where T : INumberBase<T>
    {
        switch (element)
        {
            case RingElement.Float32:
                Load(MemoryMarshal.Cast<byte, float>(bytes), into, add);
                break;
            case RingElement.Float64:
                Load(MemoryMarshal.Cast<byte, double>(bytes), into, add);
                break;
            default:
                var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < into.Length; i++)
                {
                    var value = T.CreateTruncating(RingAllReduce.FromBfloat16(halves[i]));
                    into[i] = add ? into[i] + value : value;
                }
                break;
        }
    }

    internal static void Load<TFrom, T>(ReadOnlySpan<TFrom> from, Span<T> into, bool add)
        where TFrom : INumberBase<TFrom>
        where T : INumberBase<T>
    {
        if (add)
        {
            for (int i = 0; i < into.Length; i++) into[i] += T.CreateTruncating(from[i]);
        }
        else
        {
            for (int i = 0; i < into.Length; i++) into[i] = T.CreateTruncating(from[i]);
        }
    }
}
