namespace SimClr.Core.Config;

/// <summary>What a distributed run does when a worker is lost (dies, hangs, disconnects).</summary>
public enum FaultPolicy
{
    /// <summary>Redo the step in flight over the surviving workers: the same global batch and views, so the same maths.</summary>
    Elastic,

    /// <summary>Stop with a clear message; the last checkpoint stays valid.</summary>
    FailFast,
}
