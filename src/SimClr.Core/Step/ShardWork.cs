namespace SimClr.Core.Step;

/// <summary>A shard of one step as a worker receives it: its rows, and their uint8 images ([rows, C, H, W]); with
/// data.sharedStorage no images (null): the replica reads the rows from its own copy of the data set.</summary>
public sealed record ShardWork(long Step, long Epoch, ShardRows Rows, long[] ImageShape, byte[]? Images);
