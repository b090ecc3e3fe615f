using System.Diagnostics;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>What a finished (or interrupted) stage reports.</summary>
public sealed record StageResult(string RunPath, string? CheckpointPath, IReadOnlyDictionary<string, double> Metrics, bool Completed);
