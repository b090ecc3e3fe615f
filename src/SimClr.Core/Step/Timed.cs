using SimClr.Core.Replica;

namespace SimClr.Core.Step;

/// <summary>A call's result and what the replica spent on its own work in it, by phase (<see cref="ReplicaTimes.None"/>
/// when the endpoint cannot tell: the step then counts the call's whole time as transfer).</summary>
public readonly record struct Timed<T>(T Value, ReplicaTimes Times);
