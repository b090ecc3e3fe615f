namespace SimClr.Core.Collectives;

/// <summary>What a worker ends a ring with: the float32 sum (the same bits on every worker of the ring), the NaN and
/// infinite values in the segment it completed, and the bytes it sent.</summary>
public sealed record RingResult(byte[] Sum, long NonFinite, long BytesSent);
