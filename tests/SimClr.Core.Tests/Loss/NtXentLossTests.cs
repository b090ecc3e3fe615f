using SimClr.Core.Loss;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Loss;

public class NtXentLossTests
{
    private static readonly (int, int, double)[] SizeList = [(1, 4, 0.5), (1, 4, 0.1), (2, 3, 0.5), (5, 16, 0.5), (5, 16, 0.1), (16, 128, 0.5), (16, 128, 0.1)];

    /// <summary>Every size on every test device (<see cref="TestDevices"/>).</summary>
    public static TheoryData<string, int, int, double> Sizes
    {
        get
        {
            var data = new TheoryData<string, int, int, double>();
            foreach (string device in TestDevices.Names())
                foreach (var (images, dim, t) in SizeList) data.Add(device, images, dim, t);
            return data;
        }
    }

    private static double[][] RandomProjections(int rows, int dim, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, dim).Select(_ => random.NextDouble() * 4 - 2).ToArray()).ToArray();
    }

    private static Tensor ToTensor(double[][] rows, string device = "cpu") =>
        tensor(rows.SelectMany(r => r).ToArray(), device: TestDevices.Get(device)).reshape(rows.Length, rows[0].Length);

    private static void AssertClose(double expected, double actual, double relative)
    {
        double scale = Math.Max(Math.Abs(expected), 1e-12);
        Assert.True(Math.Abs(expected - actual) <= relative * scale, $"expected {expected:R}, got {actual:R}");
    }

    private static void AssertGradientClose(double[][] expected, Tensor actual, double relative)
    {
        var flat = actual.cpu().data<double>().ToArray();
        double scale = expected.SelectMany(r => r).Max(Math.Abs);
        int d = expected[0].Length;
        for (int i = 0; i < expected.Length; i++)
        {
            for (int j = 0; j < d; j++)
            {
                double diff = Math.Abs(expected[i][j] - flat[i * d + j]);
                Assert.True(diff <= relative * scale, $"dL/dz[{i},{j}]: expected {expected[i][j]:R}, got {flat[i * d + j]:R}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Loss_and_gradient_match_an_independent_float64_computation(string device, int images, int dim, double temperature)
    {
        var z = RandomProjections(2 * images, dim, seed: images * 1000 + dim);
        var (expectedLoss, expectedGradient) = NtXentReference.Compute(z, temperature);
        using var scope = NewDisposeScope();
        var (loss, gradient) = new NtXentLoss(temperature).LossAndGradient(ToTensor(z, device));
        AssertClose(expectedLoss, loss, 1e-6);
        Assert.Equal(new long[] { 2 * images, dim }, gradient.shape);
        AssertGradientClose(expectedGradient, gradient, 1e-6);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Forward_is_differentiable_and_agrees_with_LossAndGradient(string device)
    {
        using var scope = NewDisposeScope();
        var z = ToTensor(RandomProjections(8, 5, seed: 3), device).requires_grad_(true);
        var loss = new NtXentLoss(0.5).Forward(z);
        loss.backward();
        var (value, gradient) = new NtXentLoss(0.5).LossAndGradient(z);
        AssertClose(value, loss.item<double>(), 1e-12);
        Assert.True(z.grad!.allclose(gradient, rtol: 1e-12, atol: 1e-15));
    }

    public static TheoryData<string, int, double> Aligned
    {
        get
        {
            var data = new TheoryData<string, int, double>();
            foreach (string device in TestDevices.Names())
                foreach (var (images, t) in new[] { (1, 0.5), (4, 0.5), (4, 0.1) }) data.Add(device, images, t);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Aligned))]
    public void Perfectly_aligned_pairs_of_orthogonal_images_give_the_analytic_value(string device, int images, double t)
    {
        // view 2k == view 2k+1 == e_k: the positive has cosine 1, the 2N-2 negatives cosine 0, so
        // L = -1/t + log(e^(1/t) + 2N - 2) for every anchor.
        var z = new double[2 * images][];
        for (int k = 0; k < images; k++)
        {
            z[2 * k] = new double[images];
            z[2 * k][k] = 3.0; // length does not matter
            z[2 * k + 1] = new double[images];
            z[2 * k + 1][k] = 0.5;
        }
        double expected = -1 / t + Math.Log(Math.Exp(1 / t) + 2 * images - 2);
        using var scope = NewDisposeScope();
        var loss = new NtXentLoss(t).Forward(ToTensor(z, device)).item<double>();
        AssertClose(expected, loss, 1e-9); // at t = 0.1 the value is ~2.7e-4, a difference of two ~10s
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Loss_is_mean_over_all_2N_anchors_and_float32_agrees_with_float64(string device)
    {
        var z = RandomProjections(32, 16, seed: 11);
        var (expected, _) = NtXentReference.Compute(z, 0.5);
        using var scope = NewDisposeScope();
        var loss32 = new NtXentLoss(0.5).Forward(ToTensor(z, device).to_type(ScalarType.Float32)).item<float>();
        AssertClose(expected, loss32, 1e-5);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Seed_clamp_is_off_by_default_and_when_on_zeroes_gradients_of_dissimilar_negatives(string device)
    {
        Assert.False(new NtXentLoss().SeedSimilarityClamp);
        Assert.Equal(0.5, new NtXentLoss().Temperature);
        var z = RandomProjections(12, 6, seed: 5);
        var (expectedLoss, expectedGradient) = NtXentReference.Compute(z, 0.5, seedClamp: true);
        var (paperLoss, _) = NtXentReference.Compute(z, 0.5);
        Assert.NotEqual(paperLoss, expectedLoss, 6); // random vectors have negative cosines: the quirk matters here
        using var scope = NewDisposeScope();
        var (loss, gradient) = new NtXentLoss(0.5, seedSimilarityClamp: true).LossAndGradient(ToTensor(z, device));
        AssertClose(expectedLoss, loss, 1e-6);
        AssertGradientClose(expectedGradient, gradient, 1e-6);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Impossible_temperatures_are_rejected(double t) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new NtXentLoss(t));

    [Fact]
    public void Odd_view_counts_and_wrong_shapes_are_rejected_with_a_message()
    {
        using var scope = NewDisposeScope();
        var loss = new NtXentLoss();
        Assert.Contains("even number", Assert.Throws<ArgumentException>(() => loss.Forward(randn(3, 4))).Message);
        Assert.Contains("even number", Assert.Throws<ArgumentException>(() => loss.Forward(randn(0, 4))).Message);
        Assert.Contains("[2N, d]", Assert.Throws<ArgumentException>(() => loss.Forward(randn(4))).Message);
    }
}
