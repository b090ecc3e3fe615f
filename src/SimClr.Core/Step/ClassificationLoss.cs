using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>Classification: cross-entropy averaged over the global batch (the mean over B, not over a shard).</summary>
public sealed class ClassificationLoss(IReadOnlyList<int> labels) : IStepLoss
{
    public int ViewsPerImage => 1;

    public StepLossValues LossAndGradient(Tensor outputs, long[] batch)
    {
        using var scope = NewDisposeScope();
        var target = tensor(batch.Select(i => (long)labels[(int)i]).ToArray(), device: outputs.device);
        var leaf = outputs.detach().clone().requires_grad_(true);
        var loss = nn.functional.cross_entropy(leaf, target);
        loss.backward();
        var gradient = leaf.grad ?? throw new InvalidOperationException("autograd produced no gradient for the logits");
        var correct = leaf.detach().argmax(1).eq(target).sum(ScalarType.Float64);
        var seen = tensor((double)batch.Length, ScalarType.Float64, device: outputs.device);
        return new StepLossValues(loss.detach().MoveToOuterDisposeScope(), gradient.detach().clone().MoveToOuterDisposeScope(),
            new Dictionary<string, Tensor> { ["correct"] = correct.MoveToOuterDisposeScope(), ["seen"] = seen.MoveToOuterDisposeScope() });
    }
}
