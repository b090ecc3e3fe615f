using SimClr.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Optim;

/// <summary>
/// SGD-momentum and LARS over named parameters, with state that checkpoints by name (TorchSharp has no LARS).
/// The learning rate is passed to every step by the schedule, so the optimiser holds no schedule state.
/// </summary>
public sealed class MomentumOptimizer : IDisposable
{
    private readonly List<(string Name, Parameter Parameter)> _parameters;
    private readonly Dictionary<string, Tensor> _momentum = [];

    public MomentumOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, OptimizerOptions options)
    {
        _parameters = parameters.Where(p => p.Parameter.requires_grad).ToList();
        Options = options;
    }

    public OptimizerOptions Options { get; }

    /// <summary>SimCLR's exclusion: one-dimensional parameters (BN weights/biases, biases) get no decay and no trust ratio.</summary>
    public static bool IsExcluded(Tensor parameter) => parameter.dim() <= 1;

    public void ZeroGrad()
    {
        foreach (var (_, p) in _parameters) p.grad?.zero_();
    }

    public void Step(double learningRate)
    {
        using var noGrad = no_grad();
        // Scalars held for the whole step (see Runtime.Scalars: implicit ones can be finalized mid-call)
        using var lr = Scalars.Of(learningRate);
        using var negativeLr = Scalars.Of(-learningRate);
        using var momentum = Scalars.Of(Options.Momentum);
        using var decay = Scalars.Of(Options.WeightDecay);
        using var trust = Scalars.Of(Options.TrustCoefficient);
        foreach (var (name, p) in _parameters)
        {
            var grad = p.grad;
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            bool excluded = IsExcluded(p);
            var g = excluded || Options.WeightDecay == 0 ? grad : grad.add(p, alpha: decay);
            if (!_momentum.TryGetValue(name, out var v))
            {
                v = zeros_like(p).DetachFromDisposeScope();
                _momentum[name] = v;
            }
            if (Options.Kind == OptimizerKind.Lars)
            {
                var step = excluded ? g.mul(lr) : g.mul(TrustRatio(p, g, trust).mul_(lr));
                v.mul_(momentum).PlusInPlace(step);
                p.MinusInPlace(v);
            }
            else
            {
                v.mul_(momentum).PlusInPlace(g);
                p.add_(v, alpha: negativeLr);
            }
        }
    }

    /// <summary>eta |w| / |g|, or 1 where either norm is zero (as SimCLR's LARS).</summary>
    private static Tensor TrustRatio(Tensor w, Tensor g, Scalar trust)
    {
        var wNorm = w.norm();
        var gNorm = g.norm();
        var ratio = wNorm.mul(trust).div(gNorm);
        var one = ones_like(ratio);
        return where(wNorm.gt(Scalars.Zero), where(gNorm.gt(Scalars.Zero), ratio, one), one);
    }

    /// <summary>Momentum buffers by parameter name, for checkpoints.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() => _momentum.Select(kv => (kv.Key, kv.Value));

    /// <summary>Loads momentum buffers by name; with <paramref name="replace"/>, buffers not in <paramref name="state"/> are dropped (a fresh optimiser's state).</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, bool replace = false)
    {
        var parameters = _parameters.ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, tensor) in state) // all checked before anything changes
        {
            if (!parameters.TryGetValue(name, out var p)) throw new InvalidDataException($"optimizer state names parameter '{name}', which this model does not have");
            if (!tensor.shape.SequenceEqual(p.shape)) throw new InvalidDataException($"optimizer state for '{name}' has shape [{string.Join(", ", tensor.shape)}], the parameter [{string.Join(", ", p.shape)}]");
        }
        if (replace)
        {
            foreach (var v in _momentum.Values) v.Dispose();
            _momentum.Clear();
        }
        foreach (var (name, tensor) in state)
        {
            var p = parameters[name];
            if (_momentum.Remove(name, out var old)) old.Dispose();
            _momentum[name] = tensor.to(p.device).to_type(p.dtype).clone().DetachFromDisposeScope(); // owned here, whatever scope the caller is in
        }
    }

    public void Dispose()
    {
        foreach (var v in _momentum.Values) v.Dispose();
        _momentum.Clear();
    }
}
