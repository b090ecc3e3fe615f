using System.Diagnostics;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>A checkpoint could not be written (disk full, no permission, ...); the previous one is intact.</summary>
public sealed class CheckpointWriteException(string message, Exception inner) : IOException(message, inner);
