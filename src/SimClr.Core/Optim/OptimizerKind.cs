namespace SimClr.Core.Optim;

public enum OptimizerKind
{
    /// <summary>SGD with momentum, PyTorch's form: v = m v + (g + wd w); w -= lr v.</summary>
    Sgd,

    /// <summary>LARS as in SimCLR (You et al. 2017): per-layer trust ratio eta |w| / |g|; v = m v + lr * ratio * g; w -= v.</summary>
    Lars,
}
