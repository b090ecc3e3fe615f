namespace SimClr.Core.Config;

/// <summary>A run config could not be used; the message lists every problem found.</summary>
public sealed class ConfigException(string message) : Exception(message);
