namespace SimClr.Protocol;

/// <summary>
/// The gRPC trailer in which a worker answers Forward, Backward and ApplyStep with what its replica spent on its own
/// work in that call, by phase: "augment=1.25;forward=3.5;reforward=0;backward=7.1;optimizer=0.8;serialize=0.4"
/// (milliseconds, invariant culture). Optional: a worker that does not send it breaks nothing, the coordinator then
/// counts the whole call as transfer. Outside the messages, so protos/simclr.proto's messages are unchanged.
/// </summary>
public static class StepTimesTrailer
{
    public const string Key = "simclr-times";
}

/// <summary>
/// The trailer of a BackwardReduce that failed (ABORTED) because the ring broke: a peer was gone, unreachable or sent
/// something wrong; not this worker's failure (see protos/simclr.proto).
/// </summary>
public static class RingTrailer
{
    public const string Key = "simclr-ring";

    public const string Broken = "broken";
}
