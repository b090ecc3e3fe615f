namespace SimClr.Core.Collectives;

/// <summary>How the values of a <see cref="RingPiece"/> are stored.</summary>
public enum RingElement
{
    Float32,
    Float64,
    Bfloat16,
}
