using SimClr.Core.Step;

namespace SimClr.Worker;

/// <summary>The run this worker joined: its replica's session (Core's <see cref="ReplicaSession"/>, which keeps the
/// calls in order) and the image shape every shard must have.</summary>
internal sealed record JoinedRun(ReplicaSession Session, int Channels, int Height, int Width);
