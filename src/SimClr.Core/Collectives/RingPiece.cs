namespace SimClr.Core.Collectives;

/// <summary>One piece of a ring all-reduce as it travels between workers: which bucket, phase (0 reduce-scatter, 1
/// all-gather), segment and piece of that segment, and its values.</summary>
public readonly record struct RingPiece(int Bucket, int Phase, int Segment, int Piece, RingElement Element, ReadOnlyMemory<byte> Data)
{
    public int Count => Data.Length / RingAllReduce.Size(Element);

    public override string ToString() => $"bucket {Bucket} {(Phase == 0 ? "reduce-scatter" : "all-gather")} segment {Segment} piece {Piece}: {Count} {Element} values";
}
