namespace SimClr.Core.Stages;

/// <summary>What a finished (or interrupted) stage reports.</summary>
public sealed record StageResult(string RunPath, string? CheckpointPath, IReadOnlyDictionary<string, double> Metrics, bool Completed);
