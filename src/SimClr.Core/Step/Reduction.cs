namespace SimClr.Core.Step;

/// <summary>What a reduction leaves for the apply phase: where each replica's gradient comes from, and the NaN and
/// infinite values in the sum.</summary>
public sealed record Reduction(StepGradient Gradient, long NonFinite);
