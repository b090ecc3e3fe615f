namespace SimClr.Core.Step;

/// <summary>One tensor of a replica's state as it travels: float32 (<paramref name="IsFloat"/>) or int64, and its shape.</summary>
public sealed record StateTensor(bool IsFloat, long[] Shape)
{
    public long Bytes => Shape.Aggregate(1L, (n, d) => n * d) * (IsFloat ? 4 : 8);
}
