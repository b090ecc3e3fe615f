using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Core.Replica;

/// <summary>
/// A forward pass with a cut between every two stages (<see cref="ModelStage"/>): each stage after the first starts
/// from a detached copy of the previous stage's output that requires grad, so backward can run one stage at a time,
/// last first, and tell when a stage's parameter gradients are final (TorchSharp has no gradient hooks, which is how
/// PyTorch's DDP learns it). The numbers are autograd's own: a stage's output feeds only the next stage, so the
/// gradient arriving at a cut is the one the whole graph would pass there, and every kernel runs on the same values.
/// </summary>
public sealed class StagedGraph : IDisposable
{
    private readonly List<Tensor?> _inputs = []; // the cut each stage after the first starts from (null for the first)
    private readonly List<Tensor?> _outputs = [];

    private StagedGraph()
    {
    }

    /// <summary>The last stage's output (the network's).</summary>
    public Tensor Output => _outputs[^1] ?? throw new ObjectDisposedException(nameof(StagedGraph));

    /// <summary>Runs <paramref name="stages"/> on <paramref name="batch"/> with a graph, cutting between stages. The graph's
    /// tensors belong to it (not to the caller's dispose scope) until it is back-propagated or disposed.</summary>
    public static StagedGraph Forward(IReadOnlyList<ModelStage> stages, Tensor batch)
    {
        var graph = new StagedGraph();
        try
        {
            using var scope = NewDisposeScope();
            var x = batch;
            for (int s = 0; s < stages.Count; s++)
            {
                var input = s == 0 ? null : x.detach().requires_grad_(true).DetachFromDisposeScope();
                graph._inputs.Add(input);
                var output = stages[s].Forward(input ?? x).DetachFromDisposeScope();
                graph._outputs.Add(output);
                x = output;
            }
            return graph;
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    /// <summary>Back-propagates <paramref name="gradient"/> (dL/d output) stage by stage, last first, calling
    /// <paramref name="stageDone"/> with each stage's index once its parameters' gradients are final; the graph is
    /// released as it goes and disposed at the end.</summary>
    public void Backward(Tensor gradient, Action<int>? stageDone = null)
    {
        Tensor? incoming = null; // dL/d(the output of the stage being back-propagated), owned here
        try
        {
            for (int s = _outputs.Count - 1; s >= 0; s--)
            {
                using (var scope = NewDisposeScope())
                {
                    var output = _outputs[s]!;
                    bool flows = s == _outputs.Count - 1 || incoming is not null; // nothing reaches stages before a cut no gradient crossed
                    if (flows && output.requires_grad) output.backward([incoming ?? gradient]);
                    var next = s > 0 && _inputs[s]!.grad is { } grad ? grad.DetachFromDisposeScope() : null;
                    incoming?.Dispose();
                    incoming = next;
                    _inputs[s]?.Dispose();
                    _inputs[s] = null;
                    output.Dispose();
                    _outputs[s] = null;
                }
                stageDone?.Invoke(s);
            }
        }
        finally
        {
            incoming?.Dispose();
            Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var t in _inputs) t?.Dispose();
        foreach (var t in _outputs) t?.Dispose();
        _inputs.Clear();
        _outputs.Clear();
    }
}
