namespace SimClr.Protocol;

/// <summary>An incoming message broke the contract (answered InvalidArgument); the message says how.</summary>
public sealed class ProtocolViolation(string message) : Exception(message);
