using SimClr.Core.Stages;
using SimClr.Core.Step;

namespace SimClr.Worker;

/// <summary>The run this worker joined: its replica's session (Core's <see cref="ReplicaSession"/>, which keeps the
/// calls in order), the image shape every shard must have, and with data.sharedStorage the data set this worker
/// opened itself (shards then index it).</summary>
internal sealed record JoinedRun(ReplicaSession Session, int Channels, int Height, int Width, PreparedStage? Data = null)
{
    /// <summary>Frees the replica and the data set (on the torch thread).</summary>
    public void Dispose()
    {
        Session.Dispose();
        Data?.Dispose();
    }
}
