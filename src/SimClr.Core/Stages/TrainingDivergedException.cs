namespace SimClr.Core.Stages;

/// <summary>The loss turned non-finite; the run stops before the bad step reaches the weights.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);
