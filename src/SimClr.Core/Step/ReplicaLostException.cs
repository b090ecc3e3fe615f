namespace SimClr.Core.Step;

/// <summary>A replica can no longer be used: its process is gone, its connection broke, or it stopped answering. An
/// endpoint's call throws it; the step turns it into a <see cref="StepFailure"/>; a trainer throws it once more when
/// the run stops for it (fail-fast, or too few workers), with what was saved.</summary>
public sealed class ReplicaLostException(string message, Exception? inner = null) : Exception(message, inner);
