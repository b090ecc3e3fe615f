using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>What a step's loss gives (<see cref="IStepLoss"/>), all on the loss's device, nothing read yet: the loss
/// (0-dim), dL/d(outputs), and the step's counts (0-dim each: "correct", "seen"), which the step reads with the loss in
/// one copy.</summary>
public sealed record StepLossValues(Tensor Loss, Tensor Gradient, IReadOnlyDictionary<string, Tensor> Counts);
