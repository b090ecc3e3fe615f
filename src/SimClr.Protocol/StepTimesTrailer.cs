namespace SimClr.Protocol;

/// <summary>
/// The gRPC trailer in which a worker answers Forward, Backward, BackwardReduce and ApplyStep with what its replica
/// spent on its own work in that call, by phase: "augment=1.25;forward=3.5;reforward=0;backward=7.1;optimizer=0.8;
/// serialize=0.4;ring=2.5" (milliseconds, invariant culture; unknown names are ignored, missing ones are 0).
/// Optional: a call without it, or with a malformed one, breaks nothing; the coordinator then counts the whole call as
/// transfer. Trailing metadata, not a message field (see the Worker service in protos/simclr.proto).
/// </summary>
public static class StepTimesTrailer
{
    public const string Key = "simclr-times";
}
