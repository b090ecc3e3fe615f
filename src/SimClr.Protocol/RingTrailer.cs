namespace SimClr.Protocol;

/// <summary>
/// The trailer of a BackwardReduce that failed (ABORTED) because the ring broke: a peer was gone, unreachable or sent
/// something wrong; not this worker's failure (see protos/simclr.proto).
/// </summary>
public static class RingTrailer
{
    public const string Key = "simclr-ring";

    public const string Broken = "broken";
}
