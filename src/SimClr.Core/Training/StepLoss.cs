using SimClr.Core.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>
/// The coordinator's half of a data-parallel step: one loss over the outputs of the whole global batch, gathered from
/// every replica in the global row order, and its gradient with respect to those outputs.
/// </summary>
public interface IStepLoss
{
    /// <summary>Views per image: 2 for SimCLR (rows 2b and 2b+1 are image b's), 1 for a classifier (row b is image b).</summary>
    int ViewsPerImage { get; }

    /// <summary>The loss over <paramref name="outputs"/> ([views, d], global order) of the images <paramref name="batch"/>,
    /// dL/d(outputs), and any metrics of the step (summed counts: "correct", "seen").</summary>
    (double Loss, Tensor Gradient, Dictionary<string, double> Metrics) LossAndGradient(Tensor outputs, long[] batch);
}

/// <summary>SimCLR: the global NT-Xent over all 2B projections.</summary>
public sealed class ContrastiveLoss(NtXentLoss loss) : IStepLoss
{
    public int ViewsPerImage => 2;

    public (double Loss, Tensor Gradient, Dictionary<string, double> Metrics) LossAndGradient(Tensor outputs, long[] batch)
    {
        var (value, gradient) = loss.LossAndGradient(outputs);
        return (value, gradient, []);
    }
}

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
