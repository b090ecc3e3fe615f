namespace SimClr.Core.Step;

/// <summary>A shard of one step as a worker receives it: its rows, and their uint8 images ([rows, C, H, W]).</summary>
public sealed record ShardWork(long Step, long Epoch, ShardRows Rows, long[] ImageShape, byte[] Images);
