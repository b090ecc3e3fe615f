using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// One piece of a network's forward pass, in order: composing every stage's <see cref="Forward"/> is the network's
/// forward. Its parameters come right after the previous stage's in state order, so a run of stages owns one
/// contiguous range of the flat gradient: what a bucket of the ring all-reduce is (the network is back-propagated stage
/// by stage, last first, and a bucket is summed while the earlier stages are still being back-propagated).
/// </summary>
public sealed record ModelStage(string Name, Func<Tensor, Tensor> Forward, IReadOnlyList<TorchSharp.Modules.Parameter> Parameters);
