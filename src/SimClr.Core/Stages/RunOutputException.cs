namespace SimClr.Core.Stages;

/// <summary>A run's output (metrics.jsonl, TensorBoard events) could not be written: the disk is full, or no permission.</summary>
public sealed class RunOutputException(string message, Exception inner) : IOException(message, inner)
{
    /// <summary>The file (or folder) that refused the write.</summary>
    public required string Path { get; init; }
}
