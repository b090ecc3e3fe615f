using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Loss;

/// <summary>
/// NT-Xent and dL/dz without the 2N x 2N similarity matrix (<see cref="NtXentKernel.Tiled"/>): blocks of rows of the
/// unit projections u = z / max(|z|, 1e-12) against all 2N columns, each block's log-sum-exp over its whole rows, and the
/// gradient by hand. With s_ij = u_i.u_j / t (i != j), P the softmax of each row of s (P_ii = 0) and Y the positive
/// indicator (Y_{i, i xor 1} = 1), L = (1/2N) sum_i [ logsumexp_{j != i} s_ij - s_{i, i xor 1} ] and
/// dL/du = (1/(2N t)) ((P - Y) u + (P - Y)^T u): u_i is both an anchor row and a column of every other row. Each block
/// adds its rows of (P - Y) u and its columns' share of (P - Y)^T u. With the seed's clamp (cosines below 1e-7 raised to
/// 1e-7) the clamped entries of P - Y contribute nothing, as autograd's clamp_min gives them. Then, through the
/// normalisation, dL/dz = (dL/du - u (u . dL/du)) / |z| (dL/du / 1e-12 for a row shorter than 1e-12).
/// Computes in float64 on float64 input, otherwise in float32; tensors stay on the input's device.
/// </summary>
internal static class TiledNtXent
{
    /// <summary>What one block of rows x 2N columns may take (in the compute type): 1024 rows at 8192 views in float32.</summary>
    public const long BlockBytes = 32L << 20;

    /// <summary>The floor of nn.functional.normalize's denominator.</summary>
    public const double NormEpsilon = 1e-12;

    /// <summary>Rows per block for <paramref name="views"/> columns of <paramref name="elementBytes"/> bytes: a block within <see cref="BlockBytes"/>, at least one row.</summary>
    public static long BlockRowsFor(long views, long elementBytes) =>
        Math.Clamp(BlockBytes / Math.Max(1, views * elementBytes), 1, Math.Max(1, views));

    /// <summary>
    /// The mean loss (a 0-dim tensor) and dL/dz (z's shape and type) for projections z [2N, d], in blocks of
    /// <paramref name="blockRows"/> rows (0: <see cref="BlockRowsFor"/>). Builds no graph.
    /// </summary>
    public static (Tensor Loss, Tensor Gradient) LossAndGradient(Tensor z, double temperature, bool seedClamp, long blockRows = 0)
    {
        if (blockRows < 0) throw new ArgumentOutOfRangeException(nameof(blockRows), blockRows, "block rows must be >= 0 (0: chosen by size)");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var type = z.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var x = z.detach().to_type(type);
        long views = x.shape[0];
        long rows = blockRows > 0 ? Math.Min(blockRows, views) : BlockRowsFor(views, x.element_size());

        using var epsilon = Scalars.Of(NormEpsilon);
        var norm = x.norm(1, keepdim: true);
        var denominator = norm.clamp_min(epsilon);
        var u = x.div(denominator);
        var du = zeros_like(u);
        var lossSum = zeros(1, dtype: type, device: x.device);
        using (var block = new Block(u, du, lossSum, temperature, seedClamp))
        {
            for (long start = 0; start < views; start += rows) block.Add(start, Math.Min(rows, views - start));
        }

        using var gradientScale = Scalars.Of(1.0 / (views * temperature));
        using var lossScale = Scalars.Of(1.0 / views);
        du.mul_(gradientScale);
        var along = u.mul(u.mul(du).sum(1, keepdim: true));
        var gradient = where(norm.gt(epsilon), du.Minus(along), du).div_(denominator).to_type(z.dtype);
        var loss = lossSum.mul_(lossScale).reshape();
        return (loss.MoveToOuterDisposeScope(), gradient.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One block of rows at a time: adds its rows' losses to the sum and its share of (P - Y) u + (P - Y)^T u to dL/du
    /// (unscaled). Holds the scalars of the whole pass.
    /// </summary>
    private sealed class Block(Tensor u, Tensor du, Tensor lossSum, double temperature, bool seedClamp) : IDisposable
    {
        private readonly Scalar _inverseTemperature = Scalars.Of(1.0 / temperature);
        private readonly Scalar _clampMin = Scalars.Of(NtXentLoss.SeedClampMin / temperature); // the clamp of cos, on cos / t

        /// <summary>
        /// Rows [start, start + rows) against all columns. Passes over the block: its product, the row maxima, exp of the
        /// difference, the row sums (and the clamp's two); 1/t goes into the anchors and 1/sum into the products' rows.
        /// </summary>
        public void Add(long start, long rows)
        {
            using var scope = NewDisposeScope();
            var anchors = u.narrow(0, start, rows);
            var s = anchors.mul(_inverseTemperature).mm(u.t()); // cos / t, rows x 2N: the only block this size
            Tensor? kept = null;
            if (seedClamp)
            {
                kept = s.ge(_clampMin);
                s.clamp_min_(_clampMin);
            }
            s.diagonal(start, 0, 1).fill_(Scalars.NegativeInfinity); // (k, start + k): each row's self
            var positive = arange(start, start + rows, dtype: ScalarType.Int64, device: u.device).bitwise_xor_(1).unsqueeze(1);
            var positives = s.gather(1, positive);
            var max = s.amax([1], keepdim: true);
            s.sub_(max).exp_(); // E, with P = E / sum
            var sum = s.sum(1, keepdim: true);
            lossSum.PlusInPlace(max.Plus(sum.log()).Minus(positives).sum());
            s.scatter_add_(1, positive, sum.neg()); // E - sum Y = sum (P - Y)
            if (kept is not null) s.mul_(kept);
            var inverse = sum.reciprocal_();
            du.narrow(0, start, rows).PlusInPlace(s.mm(u).mul_(inverse));
            du.PlusInPlace(s.t().mm(anchors.mul(inverse)));
        }

        public void Dispose()
        {
            _inverseTemperature.Dispose();
            _clampMin.Dispose();
        }
    }
}
