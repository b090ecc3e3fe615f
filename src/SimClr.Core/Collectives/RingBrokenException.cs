namespace SimClr.Core.Collectives;

/// <summary>The ring could not finish: a peer is gone, unreachable, or sent something other than the algorithm's next
/// piece. The step is redone; the worker that is really gone shows itself by failing its own call.</summary>
public sealed class RingBrokenException(string message, Exception? inner = null) : Exception(message, inner);
