using System.Numerics;
using System.Runtime.InteropServices;

namespace SimClr.Core.Collectives;

/// <summary>The arithmetic of one worker's ring: its local gradient, the sum being filled in, and the precision.</summary>
internal sealed class RingArithmetic(GradientBytes local, RingElement own, ReducePrecision precision, Memory<byte> sum, int pieceElements)
{
    /// <summary>What the first reduce-scatter hop sends: exact sends the local values as they are.</summary>
    public RingElement FirstHop { get; } = precision switch
    {
        ReducePrecision.Exact => own,
        ReducePrecision.Float32 => RingElement.Float32,
        _ => RingElement.Bfloat16,
    };

    /// <summary>What a first hop may arrive as (the previous worker's local precision may differ from this one's).</summary>
    public RingElement[] FirstHopAccepts { get; } = precision == ReducePrecision.Exact ? [RingElement.Float32, RingElement.Float64] : [precision == ReducePrecision.Float32 ? RingElement.Float32 : RingElement.Bfloat16];

    /// <summary>What later reduce-scatter hops send.</summary>
    public RingElement Partial { get; } = precision switch
    {
        ReducePrecision.Exact => RingElement.Float64,
        ReducePrecision.Float32 => RingElement.Float32,
        _ => RingElement.Bfloat16,
    };

    /// <summary>What the all-gather sends.</summary>
    public RingElement Result { get; } = precision == ReducePrecision.Bfloat16 ? RingElement.Bfloat16 : RingElement.Float32;

    public (long Start, int Count) Piece(long segmentStart, int segmentCount, int piece)
    {
        int offset = piece * pieceElements;
        return (segmentStart + offset, Math.Min(pieceElements, segmentCount - offset));
    }

    private ReadOnlySpan<byte> Own(long start, int n) => local.Data.AsSpan(checked((int)(start * RingAllReduce.Size(own))), n * RingAllReduce.Size(own));

    /// <summary>This worker's values [start, start + n) as the first hop sends them (no copy when they already are).</summary>
    public ReadOnlyMemory<byte> Encode(long start, int n)
    {
        if (FirstHop == own) return local.Data.AsMemory(checked((int)(start * RingAllReduce.Size(own))), n * RingAllReduce.Size(own));
        if (FirstHop == RingElement.Float32)
        {
            var bytes = new byte[n * 4];
            RingElements.Load(Own(start, n), own, MemoryMarshal.Cast<byte, float>(bytes.AsSpan()), add: false);
            return bytes;
        }
        var values = new float[n];
        RingElements.Load(Own(start, n), own, values.AsSpan(), add: false);
        return RingElements.Bfloat16Bytes(values);
    }

    /// <summary>The incoming partial sum plus this worker's values [start, start + n), into <paramref name="into"/>:
    /// float64 (exact) or float32.</summary>
    private void Accumulate<T>(RingPiece incoming, long start, int n, Span<T> into)
        where T : INumberBase<T>
    {
        RingElements.Load(incoming.Data.Span, incoming.Element, into, add: false);
        RingElements.Load(Own(start, n), own, into, add: true);
    }

    /// <summary>A partial sum to pass on: incoming plus this worker's values, as <see cref="Partial"/>.</summary>
    public ReadOnlyMemory<byte> Add(RingPiece incoming, long start, int n)
    {
        if (Partial == RingElement.Bfloat16)
        {
            var values = new float[n];
            Accumulate(incoming, start, n, values.AsSpan());
            return RingElements.Bfloat16Bytes(values);
        }
        var bytes = new byte[n * RingAllReduce.Size(Partial)];
        if (Partial == RingElement.Float64) Accumulate(incoming, start, n, MemoryMarshal.Cast<byte, double>(bytes.AsSpan()));
        else Accumulate(incoming, start, n, MemoryMarshal.Cast<byte, float>(bytes.AsSpan()));
        return bytes;
    }

    private double[]? _wide; // exact: one piece's float64 sum before it is rounded, reused piece after piece

    /// <summary>The last hop: the complete sum, rounded once into the result; returns its non-finite count and the bytes to gather.</summary>
    public long Complete(RingPiece incoming, long start, int n, out ReadOnlyMemory<byte> final)
    {
        var target = MemoryMarshal.Cast<byte, float>(sum.Span.Slice(checked((int)(start * 4)), n * 4));
        final = sum.Slice(checked((int)(start * 4)), n * 4);
        if (precision == ReducePrecision.Exact)
        {
            var wide = (_wide ??= new double[pieceElements]).AsSpan(0, n);
            Accumulate(incoming, start, n, wide);
            return GradientBytes.RoundInto(wide, target);
        }
        Accumulate(incoming, start, n, target);
        if (precision == ReducePrecision.Float32) return GradientSum.CountNonFinite(MemoryMarshal.AsBytes(target));
        var halves = RingElements.Bfloat16Bytes(target);
        final = halves;
        return RingElements.WidenBfloat16(halves, target);
    }

    /// <summary>An all-gathered piece of the result into the sum.</summary>
    public void Store(RingPiece incoming, long start, int n) =>
        RingElements.Load(incoming.Data.Span, incoming.Element, MemoryMarshal.Cast<byte, float>(sum.Span.Slice(checked((int)(start * 4)), n * 4)), add: false);
}
