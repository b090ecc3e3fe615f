namespace SimClr.Core.Config;

public sealed record FaultOptions
{
    public FaultPolicy Policy { get; init; } = FaultPolicy.Elastic;

    /// <summary>Below this many workers the run waits up to <see cref="JoinWaitSeconds"/> for lost workers to come
    /// back (or `simclr launch` to restart them), then stops with a checkpoint (elastic policy).</summary>
    public int MinWorkers { get; init; } = 1;

    /// <summary>How long a run below <see cref="MinWorkers"/> waits for joiners before it stops.</summary>
    public double JoinWaitSeconds { get; init; } = 60;

    public NonFinitePolicy NonFinite { get; init; } = NonFinitePolicy.Skip;

    /// <summary>With <see cref="NonFinitePolicy.Skip"/>: skipped steps allowed over the run; one more stops it.</summary>
    public int MaxSkippedSteps { get; init; } = 10;

    /// <summary>While a call is in flight the coordinator checks the worker's health this often ...</summary>
    public double HeartbeatSeconds { get; init; } = 2;

    /// <summary>... and counts it lost after this many missed checks in a row (a hung or stopped process answers none).</summary>
    public int HeartbeatMisses { get; init; } = 3;

    /// <summary>How often (seconds) a lost worker is probed between steps; when it is back it joins again, receives
    /// the full state and takes shards from the next step on. 0: never.</summary>
    public double RejoinSeconds { get; init; } = 5;
}
