namespace SimClr.Core.Replica;

/// <summary>A gradient with NaN or infinite values reached a replica's step: the step is refused, nothing changes.</summary>
public sealed class NonFiniteGradientException(string message) : Exception(message);
