namespace SimClr.Core.Step;

/// <summary>Where the gradient a replica applies comes from.</summary>
public enum GradientSource
{
    /// <summary>Its own last backward (a run with one replica: nothing to sum).</summary>
    Own,

    /// <summary>The sum, sent with the call (the star: every gradient went to the coordinator).</summary>
    Sent,

    /// <summary>The sum its ring all-reduce left on it (<see cref="IReplicaEndpoint.BackwardReduceAsync"/>).</summary>
    Ring,
}
