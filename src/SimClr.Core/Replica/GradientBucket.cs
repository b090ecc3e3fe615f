using SimClr.Core.Collectives;

namespace SimClr.Core.Replica;

/// <summary>A bucket of the flat gradient (<see cref="ModelReplica.Buckets"/>): the parameters of stages
/// [FirstStage, LastStage], which are parameters [FirstParameter, EndParameter) in state order and values
/// [Offset, Offset + Count) of the flat gradient.</summary>
public sealed record GradientBucket(int FirstStage, int LastStage, int FirstParameter, int EndParameter, long Offset, long Count)
{
    public RingBucket Ring => new(Offset, Count);
}
