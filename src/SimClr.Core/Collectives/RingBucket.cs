namespace SimClr.Core.Collectives;

/// <summary>A contiguous range of the flat gradient that the ring sums on its own, as soon as the worker's values for
/// it are final (the bucket's stages are back-propagated): values [Offset, Offset + Count).</summary>
public readonly record struct RingBucket(long Offset, long Count);
