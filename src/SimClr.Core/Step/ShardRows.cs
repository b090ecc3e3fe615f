namespace SimClr.Core.Step;

/// <summary>
/// One worker's part of a step: the views it augments and forwards (data-set index and view of each row), where
/// each row sits in the global interleaved order NT-Xent expects (image b's views at rows 2b and 2b+1), and how its
/// rows split into forward passes (chunk sizes, summing to the rows).
/// </summary>
public sealed record ShardRows(long[] Indices, int[] Views, int[] GlobalRows, int[] ChunkSizes)
{
    public int Count => Indices.Length;
}
