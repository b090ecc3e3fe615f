namespace SimClr.Coordinator;

/// <summary>Workers could not be reached or refused to join; the message says which and why.</summary>
public sealed class WorkerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
