using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>Classification: cross-entropy averaged over the global batch (the mean over B, not over a shard).</summary>
public sealed class ClassificationLoss(IReadOnlyList<int> labels) : IStepLoss
{
    public int ViewsPerImage => 1;

    public (double Loss, Tensor Gradient, Dictionary<string, double> Metrics) LossAndGradient(Tensor outputs, long[] batch)
    {
        using var scope = NewDisposeScope();
        var target = tensor(batch.Select(i => (long)labels[(int)i]).ToArray());
        var leaf = outputs.detach().clone().requires_grad_(true);
        var loss = nn.functional.cross_entropy(leaf, target);
        loss.backward();
        var gradient = leaf.grad ?? throw new InvalidOperationException("autograd produced no gradient for the logits");
        double correct = leaf.detach().argmax(1).eq(target).sum().ToDouble();
        return (loss.ToDouble(), gradient.detach().clone().MoveToOuterDisposeScope(), new Dictionary<string, double> { ["correct"] = correct, ["seen"] = batch.Length });
    }
}
