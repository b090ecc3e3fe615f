using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Loss;

/// <summary>
/// NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1):
/// for 2N projections, L2-normalise, take cosine similarities / t, exclude each row's self-similarity,
/// and take the cross-entropy towards the other view of the same image, averaged over all 2N anchors.
///
/// View layout: interleaved. Rows 2k and 2k+1 of z are the two views of image k (the seed's layout);
/// any order of images is fine as long as each image's pair stays adjacent.
/// </summary>
public sealed class NtXentLoss
{
    /// <summary>The seed's code clamps cosine similarities at this value before scaling (its quirk).</summary>
    public const double SeedClampMin = 1e-7;

    public NtXentLoss(double temperature = 0.5, bool seedSimilarityClamp = false)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be a finite number > 0");
        Temperature = temperature;
        SeedSimilarityClamp = seedSimilarityClamp;
    }

    public double Temperature { get; }

    /// <summary>
    /// Compatibility with the seed's code: clamp similarities at 1e-7 before scaling. That zeroes the gradient of
    /// every negative pair whose cosine similarity is below 1e-7, so it is NOT the paper's loss; off by default.
    /// </summary>
    public bool SeedSimilarityClamp { get; }

    /// <summary>The mean loss over all 2N anchors, differentiable with respect to <paramref name="z"/> ([2N, d]).</summary>
    public Tensor Forward(Tensor z)
    {
        Validate(z);
        long n2 = z.shape[0];
        using var scope = NewDisposeScope();
        var unit = nn.functional.normalize(z, p: 2, dim: 1);
        var cosine = unit.mm(unit.t());
        using var clamp = Runtime.Scalars.Of(SeedClampMin);
        using var temperature = Runtime.Scalars.Of(Temperature);
        if (SeedSimilarityClamp) cosine = cosine.clamp_min(clamp);
        var self = eye(n2, dtype: ScalarType.Bool, device: z.device);
        var logits = cosine.div(temperature).masked_fill(self, Runtime.Scalars.NegativeInfinity);
        var positives = arange(n2, dtype: ScalarType.Int64, device: z.device).bitwise_xor(1);
        return nn.functional.cross_entropy(logits, positives).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// How <see cref="LossAndGradient"/> computes: <see cref="NtXentKernel.Auto"/> (the default) takes
    /// <see cref="KernelFor"/> the projections' device. <see cref="Forward"/> is always the full matrix (autograd).
    /// </summary>
    public NtXentKernel Kernel { get; init; } = NtXentKernel.Auto;

    /// <summary>
    /// Rows per block of the tiled kernel; 0 (the default) chooses them so that a block of rows x 2N stays within
    /// ~32 MiB. Tests set a few rows to check blocks that do not divide 2N.
    /// </summary>
    public long BlockRows
    {
        get => _blockRows;
        init => _blockRows = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(BlockRows), value, "block rows must be >= 0 (0: chosen by size)");
    }

    private readonly long _blockRows;

    /// <summary>
    /// The kernel <see cref="LossAndGradient"/> runs for projections on <paramref name="device"/>: <see cref="Kernel"/>,
    /// or for Auto the tiled kernel on the CPU (the full matrix at 8192 views takes seconds and GiBs there) and the full
    /// matrix elsewhere (on CUDA it is a few large, cheap matrix products).
    /// </summary>
    public NtXentKernel KernelFor(Device device) => Kernel switch
    {
        NtXentKernel.Auto => device.type == DeviceType.CPU ? NtXentKernel.Tiled : NtXentKernel.Full,
        var chosen => chosen,
    };

    /// <summary>
    /// The loss and dL/dz for projections that carry no graph (e.g. gathered from workers): the coordinator hands
    /// each worker its slice of dL/dz to back-propagate through its own graph. The gradient is detached, z's shape.
    /// Reads the loss to the host once; <see cref="LossAndGradientTensors"/> leaves it on the device.
    /// </summary>
    public (double Loss, Tensor Gradient) LossAndGradient(Tensor z)
    {
        using var scope = NewDisposeScope();
        var (loss, gradient) = LossAndGradientTensors(z);
        return (loss.ToDouble(), gradient.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The loss (a 0-dim tensor) and dL/dz, both detached and on z's device, by <see cref="KernelFor"/> z's device.
    /// Float32 in, float32 out (float64 for float64).
    /// </summary>
    public (Tensor Loss, Tensor Gradient) LossAndGradientTensors(Tensor z)
    {
        Validate(z);
        if (KernelFor(z.device) == NtXentKernel.Tiled) return TiledNtXent.LossAndGradient(z, Temperature, SeedSimilarityClamp, BlockRows);
        using var scope = NewDisposeScope();
        var leaf = z.detach().clone().requires_grad_(true);
        var loss = Forward(leaf);
        loss.backward();
        var gradient = leaf.grad ?? throw new InvalidOperationException("autograd produced no gradient for z");
        return (loss.detach().MoveToOuterDisposeScope(), gradient.detach().clone().MoveToOuterDisposeScope());
    }

    private static void Validate(Tensor z)
    {
        if (z.dim() != 2)
            throw new ArgumentException($"NT-Xent expects projections of shape [2N, d]; got {z.dim()} dimensions", nameof(z));
        if (z.shape[0] < 2 || z.shape[0] % 2 != 0)
            throw new ArgumentException($"NT-Xent expects an even number (>= 2) of views, two per image; got {z.shape[0]}", nameof(z));
        if (!z.is_floating_point())
            throw new ArgumentException($"NT-Xent expects floating-point projections; got {z.dtype}", nameof(z));
    }
}
