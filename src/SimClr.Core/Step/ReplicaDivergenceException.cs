namespace SimClr.Core.Step;

/// <summary>The replicas disagree after a step: their parameters are no longer bit-identical.</summary>
public sealed class ReplicaDivergenceException(string message) : Exception(message);
