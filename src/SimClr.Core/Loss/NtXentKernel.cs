namespace SimClr.Core.Loss;

/// <summary>
/// How <see cref="NtXentLoss.LossAndGradient"/> computes the loss and dL/dz. Both give the same loss and gradient (to
/// rounding; tests/SimClr.Core.Tests/Loss/TiledNtXentTests.cs holds them to 1e-6 of a float64 reference).
/// </summary>
public enum NtXentKernel
{
    /// <summary>The default: <see cref="Tiled"/> on the CPU, <see cref="Full"/> on CUDA (<see cref="NtXentLoss.KernelFor"/>).</summary>
    Auto,

    /// <summary>
    /// Blocks of rows against all 2N columns with the gradient worked out by hand: never the whole 2N x 2N similarity
    /// matrix, a block of at most ~32 MiB at a time (at 8192 x 128 on 2 CPU cores: BENCHMARKS.md, issue 16).
    /// </summary>
    Tiled,

    /// <summary>
    /// The whole 2N x 2N matrix through autograd (<see cref="NtXentLoss.Forward"/>, then backward): several matrices of
    /// 2N x 2N in memory at once, cheap on a GPU, slow and large on a CPU at thousands of views.
    /// </summary>
    Full,
}
