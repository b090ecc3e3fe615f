namespace SimClr.Core.Collectives;

/// <summary>What the ring's partial sums travel as.</summary>
public enum ReducePrecision
{
    /// <summary>float64 partial sums: exact, the same bits whatever the ring's order or size (and the star's).</summary>
    Exact,

    /// <summary>float32 partial sums: fewer bytes when there are more than 2 workers; rounding depends on the ring.</summary>
    Float32,

    /// <summary>bfloat16 on the wire, float32 sums, the result rounded to bfloat16: half the bytes, lossy.</summary>
    Bfloat16,
}
