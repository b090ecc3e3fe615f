namespace SimClr.Core.Step;

/// <summary>A float32 tensor as bytes (projections, dL/dz): what crosses a process boundary.</summary>
public sealed record FloatBlock(long[] Shape, byte[] Data);
