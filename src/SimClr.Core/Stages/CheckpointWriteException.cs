namespace SimClr.Core.Stages;

/// <summary>A checkpoint could not be written (disk full, no permission, ...); the previous one is intact.</summary>
public sealed class CheckpointWriteException(string message, Exception inner) : IOException(message, inner);
