namespace SimClr.Core.Runtime;

/// <summary>Host synchronisations of a step or a call (<see cref="HostSyncs"/>): reads the host needs, copies for a
/// transport, and phase-timer synchronisations (CUDA only).</summary>
public sealed record SyncCounts(long Reads, long Transport, long Timer)
{
    public static readonly SyncCounts None = new(0, 0, 0);

    public static SyncCounts operator +(SyncCounts a, SyncCounts b) => new(a.Reads + b.Reads, a.Transport + b.Transport, a.Timer + b.Timer);
}
