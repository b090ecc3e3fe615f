using SimClr.Core.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Loss;

/// <summary>
/// The tiled kernel (<see cref="NtXentKernel.Tiled"/>) against the reference, the full-matrix autograd version run in
/// float64. Bounds, relative to the reference: |L - L_ref| / |L_ref| and max |g - g_ref| / max |g_ref| (g = dL/dz),
/// each <= 1e-6 for float64 input, and for float32 input against the float64 reference of the same values too.
/// </summary>
public class TiledNtXentTests
{
    /// <summary>(views, dim, rows per block): blocks that divide 2N, that do not (3, 5, 7), one row, more rows than views, and the size chosen by bytes (0).</summary>
    public static TheoryData<int, int, long> Shapes => new()
    {
        { 2, 3, 1 }, { 6, 4, 3 }, { 10, 16, 3 }, { 14, 5, 5 }, { 24, 8, 5 }, { 32, 128, 7 }, { 64, 32, 16 }, { 16, 8, 40 }, { 48, 24, 0 },
    };

    private static Tensor Projections(int views, int dim, int seed, ScalarType type)
    {
        using var generator = new Generator((ulong)seed);
        return randn([views, dim], dtype: ScalarType.Float64, generator: generator).to_type(type);
    }

    /// <summary>The reference: the full-matrix autograd kernel on the float64 values of z.</summary>
    private static (double Loss, Tensor Gradient) Reference(Tensor z, double t, bool clamp) =>
        new NtXentLoss(t, clamp) { Kernel = NtXentKernel.Full }.LossAndGradient(z.to_type(ScalarType.Float64));

    private static (double Loss, double Gradient) RelativeErrors(Tensor z, double t, bool clamp, long blockRows)
    {
        using var scope = NewDisposeScope();
        var (expected, expectedGradient) = Reference(z, t, clamp);
        var (loss, gradient) = new NtXentLoss(t, clamp) { Kernel = NtXentKernel.Tiled, BlockRows = blockRows }.LossAndGradient(z);
        Assert.Equal(z.shape, gradient.shape);
        Assert.Equal(z.dtype, gradient.dtype);
        // two views: the only other row is the positive, loss and gradient are 0 exactly (so the floor of the denominators)
        double gradientError = (gradient.to_type(ScalarType.Float64) - expectedGradient).abs().max().ToDouble()
            / Math.Max(expectedGradient.abs().max().ToDouble(), double.Epsilon);
        return (Math.Abs(loss - expected) / Math.Max(Math.Abs(expected), double.Epsilon), gradientError);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float64_loss_and_gradient_agree_with_the_full_matrix_to_1e6(int views, int dim, long blockRows)
    {
        foreach (double t in new[] { 0.1, 0.5 })
        {
            foreach (bool clamp in new[] { false, true })
            {
                using var scope = NewDisposeScope();
                var (loss, gradient) = RelativeErrors(Projections(views, dim, seed: views * 100 + dim, ScalarType.Float64), t, clamp, blockRows);
                Assert.True(loss <= 1e-6, $"t {t}, clamp {clamp}: loss relative error {loss:E2}");
                Assert.True(gradient <= 1e-6, $"t {t}, clamp {clamp}: gradient max error / max {gradient:E2}");
            }
        }
    }

    [Theory]
    [InlineData(32, 128, 7L, 0.1)]
    [InlineData(32, 128, 7L, 0.5)]
    [InlineData(256, 64, 0L, 0.1)]
    [InlineData(256, 64, 0L, 0.5)]
    public void Float32_loss_and_gradient_agree_with_the_float64_reference_to_1e6(int views, int dim, long blockRows, double t)
    {
        foreach (bool clamp in new[] { false, true })
        {
            using var scope = NewDisposeScope();
            var (loss, gradient) = RelativeErrors(Projections(views, dim, seed: 7, ScalarType.Float32), t, clamp, blockRows);
            Assert.True(loss <= 1e-6, $"clamp {clamp}: loss relative error {loss:E2}");
            Assert.True(gradient <= 1e-6, $"clamp {clamp}: gradient max error / max {gradient:E2}");
        }
    }

    [Fact]
    public void The_clamp_changes_loss_and_gradient_and_matches_the_independent_loops()
    {
        using var scope = NewDisposeScope();
        var z = Projections(12, 6, seed: 5, ScalarType.Float64);
        var rows = Enumerable.Range(0, 12).Select(i => z[i].data<double>().ToArray()).ToArray();
        var (expectedLoss, expectedGradient) = NtXentReference.Compute(rows, 0.5, seedClamp: true);
        var tiled = new NtXentLoss(0.5, seedSimilarityClamp: true) { Kernel = NtXentKernel.Tiled, BlockRows = 5 };
        var (loss, gradient) = tiled.LossAndGradient(z);
        var (paperLoss, paperGradient) = new NtXentLoss(0.5) { Kernel = NtXentKernel.Tiled, BlockRows = 5 }.LossAndGradient(z);
        Assert.True(Math.Abs(paperLoss - loss) > 1e-3, "random vectors have negative cosines: the clamp matters here");
        Assert.False(paperGradient.allclose(gradient, rtol: 1e-3, atol: 1e-6));
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-9 * Math.Abs(expectedLoss));
        double scale = expectedGradient.SelectMany(r => r).Max(Math.Abs);
        var flat = gradient.data<double>().ToArray();
        for (int i = 0; i < 12; i++)
            for (int j = 0; j < 6; j++) Assert.True(Math.Abs(flat[i * 6 + j] - expectedGradient[i][j]) <= 1e-9 * scale, $"dL/dz[{i},{j}]");
    }

    [Fact]
    public void A_row_shorter_than_the_normalisation_floor_gets_autograds_gradient()
    {
        using var scope = NewDisposeScope();
        var z = Projections(8, 4, seed: 9, ScalarType.Float64);
        z[3].mul_(1e-14); // |z_3| < 1e-12: normalize divides by 1e-12, not by |z_3|
        var (loss, gradient) = RelativeErrors(z, 0.5, clamp: false, blockRows: 3);
        Assert.True(loss <= 1e-6 && gradient <= 1e-6, $"loss {loss:E2}, gradient {gradient:E2}");
    }

    [Fact]
    public void LossAndGradient_takes_the_tiled_kernel_on_the_cpu_and_the_full_matrix_on_cuda()
    {
        var auto = new NtXentLoss(0.5);
        Assert.Equal(NtXentKernel.Auto, auto.Kernel);
        Assert.Equal(NtXentKernel.Tiled, auto.KernelFor(CPU));
        Assert.Equal(NtXentKernel.Full, auto.KernelFor(new Device(DeviceType.CUDA, 0)));
        Assert.Equal(NtXentKernel.Full, new NtXentLoss(0.5) { Kernel = NtXentKernel.Full }.KernelFor(CPU));
        Assert.Equal(NtXentKernel.Tiled, new NtXentLoss(0.5) { Kernel = NtXentKernel.Tiled }.KernelFor(new Device(DeviceType.CUDA, 0)));

        // what it computes on the CPU is the tiled kernel's result to the bit, and not the full matrix's
        using var scope = NewDisposeScope();
        var z = Projections(64, 32, seed: 3, ScalarType.Float32);
        var (loss, gradient) = auto.LossAndGradient(z);
        var (tiledLoss, tiledGradient) = new NtXentLoss(0.5) { Kernel = NtXentKernel.Tiled }.LossAndGradient(z);
        var (_, fullGradient) = new NtXentLoss(0.5) { Kernel = NtXentKernel.Full }.LossAndGradient(z);
        Assert.Equal(tiledLoss, loss);
        Assert.True(gradient.equal(tiledGradient).all().item<bool>());
        Assert.False(gradient.equal(fullGradient).all().item<bool>());
    }

    [Fact]
    public void The_loss_stays_a_tensor_on_the_device_when_asked_and_negative_blocks_are_refused()
    {
        using var scope = NewDisposeScope();
        var z = Projections(10, 4, seed: 1, ScalarType.Float32);
        var (loss, gradient) = new NtXentLoss(0.5).LossAndGradientTensors(z);
        Assert.Equal(0, loss.dim());
        Assert.Equal(ScalarType.Float32, loss.dtype);
        Assert.Equal(new NtXentLoss(0.5).LossAndGradient(z).Loss, loss.ToDouble());
        Assert.False(gradient.requires_grad);
        Assert.Throws<ArgumentOutOfRangeException>(() => new NtXentLoss(0.5) { BlockRows = -1 });
        Assert.Equal(1024, TiledNtXent.BlockRowsFor(8192, 4)); // 1024 x 8192 float32 = 32 MiB
        Assert.Equal(10, TiledNtXent.BlockRowsFor(10, 4));
    }
}
