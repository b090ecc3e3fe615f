using SimClr.Core.Augmentation;

namespace SimClr.Core.Tests.Augmentation;

public class ViewSamplerTests
{
    private const int Draws = 20_000;

    private static List<ViewParameters> Sample(AugmentationOptions options, int draws = Draws, int side = 32) =>
        Enumerable.Range(0, draws).Select(i => new ViewSampler(options, seed: 7).Sample(epoch: 3, index: i / 2, view: i % 2, side, side)).ToList();

    private static void AssertRate(double expected, double observed, int n)
    {
        double sigma = Math.Sqrt(expected * (1 - expected) / n);
        Assert.InRange(observed, expected - 3 * sigma, expected + 3 * sigma);
    }

    [Fact]
    public void Flip_jitter_and_grayscale_happen_at_their_probabilities()
    {
        var views = Sample(new AugmentationOptions());
        AssertRate(0.5, views.Count(v => v.Flip) / (double)Draws, Draws);
        AssertRate(0.8, views.Count(v => v.Jitter) / (double)Draws, Draws);
        AssertRate(0.2, views.Count(v => v.Grayscale) / (double)Draws, Draws);
    }

    [Fact]
    public void Jitter_factors_are_uniform_on_torchvisions_ranges_and_orders_are_uniform_permutations()
    {
        var jittered = Sample(new AugmentationOptions()).Where(v => v.Jitter).ToList();
        foreach (var (values, low, high) in new[]
        {
            (jittered.Select(v => v.Brightness).ToList(), 0.6, 1.4), (jittered.Select(v => v.Contrast).ToList(), 0.6, 1.4),
            (jittered.Select(v => v.Saturation).ToList(), 0.6, 1.4), (jittered.Select(v => v.Hue).ToList(), -0.1, 0.1),
        })
        {
            Assert.All(values, x => Assert.InRange(x, low, high));
            double sd = (high - low) / Math.Sqrt(12);
            Assert.InRange(values.Average(), (low + high) / 2 - 3 * sd / Math.Sqrt(values.Count), (low + high) / 2 + 3 * sd / Math.Sqrt(values.Count));
            Assert.InRange(values.Count(x => x < low + (high - low) / 4) / (double)values.Count, 0.23, 0.27);
        }
        var orders = jittered.GroupBy(v => v.Order.Packed).ToList();
        Assert.Equal(24, orders.Count);
        Assert.All(orders, g => AssertRate(1.0 / 24, g.Count() / (double)jittered.Count, jittered.Count));
    }

    [Fact]
    public void Unjittered_views_carry_identity_factors()
    {
        Assert.All(Sample(new AugmentationOptions(), 2000).Where(v => !v.Jitter), v => Assert.Equal((1.0, 1.0, 1.0, 0.0), (v.Brightness, v.Contrast, v.Saturation, v.Hue)));
    }

    [Fact]
    public void Crop_area_and_aspect_follow_torchvisions_distribution()
    {
        // torchvision 0.14.1 RandomResizedCrop(32).get_params on a 32x32 image, 200,000 draws (bench/crop_reference.py):
        // area fraction mean 0.4904, std 0.2404, min 0.0781, P(area <= x) below; log(w/h) mean 0.000, std 0.161
        var crops = Sample(new AugmentationOptions());
        var area = crops.Select(v => v.Width * v.Height / 1024.0).Order().ToArray();
        Assert.InRange(area.Average(), 0.4904 - 0.006, 0.4904 + 0.006);
        Assert.InRange(Std(area), 0.2404 - 0.006, 0.2404 + 0.006);
        double[] thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
        double[] torchvisionCdf = [0.0273, 0.1433, 0.2773, 0.3896, 0.5176, 0.6323, 0.7559, 0.8850, 0.9602];
        for (int q = 0; q < thresholds.Length; q++) // 3 sigma of both samples' noise is about 0.011
            Assert.InRange(area.Count(a => a <= thresholds[q]) / (double)area.Length, torchvisionCdf[q] - 0.013, torchvisionCdf[q] + 0.013);
        Assert.InRange(area[0], 0.078, 0.09); // 0.08 of the area, up to rounding of the side lengths
        Assert.True(area[^1] <= 1.0);
        var logAspect = crops.Select(v => Math.Log((double)v.Width / v.Height)).ToArray();
        Assert.InRange(logAspect.Average(), -0.006, 0.006);
        Assert.InRange(Std(logAspect), 0.161 - 0.006, 0.161 + 0.006);
        Assert.All(crops, v => Assert.True(v.Top >= 0 && v.Left >= 0 && v.Top + v.Height <= 32 && v.Left + v.Width <= 32));
    }

    [Fact]
    public void Crop_positions_are_uniform_over_the_valid_range()
    {
        var crops = Sample(new AugmentationOptions()).Where(v => v.Height == 16).ToList();
        Assert.True(crops.Count > 200);
        Assert.InRange(crops.Average(v => v.Top), 8 - 0.5, 8 + 0.5); // uniform on 0..16
        Assert.Equal(16, crops.Max(v => v.Top));
        Assert.Equal(0, crops.Min(v => v.Top));
    }

    [Fact]
    public void When_no_try_fits_the_central_fallback_is_used()
    {
        // a 4:1 image with ratios in [3/4, 4/3] and scale 1: no try fits, so the centre crop with the largest allowed ratio
        var sampler = new ViewSampler(new AugmentationOptions { CropScaleMin = 1, CropScaleMax = 1 }, 0);
        var v = sampler.Sample(0, 0, 0, height: 8, width: 32);
        Assert.Equal((0, 10, 8, 11), (v.Top, v.Left, v.Height, v.Width)); // w = round(8 * 4/3) = 11, left = (32 - 11) // 2
    }

    [Fact]
    public void Draws_are_a_pure_function_of_seed_epoch_index_and_view()
    {
        var options = new AugmentationOptions();
        var a = new ViewSampler(options, 1).Sample(2, 3, 0, 32, 32);
        Assert.Equal(a, new ViewSampler(options, 1).Sample(2, 3, 0, 32, 32));
        Assert.NotEqual(a, new ViewSampler(options, 2).Sample(2, 3, 0, 32, 32));
        Assert.NotEqual(a, new ViewSampler(options, 1).Sample(3, 3, 0, 32, 32));
        Assert.NotEqual(a, new ViewSampler(options, 1).Sample(2, 4, 0, 32, 32));
        Assert.NotEqual(a, new ViewSampler(options, 1).Sample(2, 3, 1, 32, 32));
    }

    [Fact]
    public void Switching_one_operation_off_leaves_the_others_draws_unchanged()
    {
        var all = new ViewSampler(new AugmentationOptions(), 9).Sample(0, 17, 1, 32, 32);
        var noFlip = new ViewSampler(new AugmentationOptions { FlipProbability = 0 }, 9).Sample(0, 17, 1, 32, 32);
        Assert.Equal(all with { Flip = false }, noFlip);
    }

    private static double Std(IReadOnlyCollection<double> values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(x => (x - mean) * (x - mean)) / values.Count);
    }

    /// <summary>Off by default (no draw at all, so earlier runs keep their views); on, about p of the views are blurred with
    /// sigma uniform on the range, a pure function of (seed, epoch, index, view); the kernel is 10% of the side, odd.</summary>
    [Fact]
    public void Blur_is_off_by_default_and_drawn_at_its_probability_on_the_papers_sigma_range()
    {
        var off = new ViewSampler(new AugmentationOptions(), 5);
        Assert.All(Enumerable.Range(0, 200), i => Assert.Equal(0, off.Sample(0, i, 0, 32, 32).BlurSigma));
        var options = new AugmentationOptions { BlurProbability = 0.5 };
        var on = new ViewSampler(options, 5);
        var sigmas = Enumerable.Range(0, 4000).Select(i => on.Sample(1, i, i % 2, 32, 32).BlurSigma).ToList();
        Assert.InRange(sigmas.Count(s => s > 0) / 4000.0, 0.46, 0.54);
        Assert.All(sigmas.Where(s => s > 0), s => Assert.InRange(s, 0.1, 2.0));
        Assert.InRange(sigmas.Where(s => s > 0).Average(), 1.0, 1.1);
        Assert.Equal(on.Sample(1, 17, 1, 32, 32), new ViewSampler(options, 5).Sample(1, 17, 1, 32, 32));
        var sharp = on.Sample(1, 17, 1, 32, 32) with { BlurSigma = 0 };
        Assert.Equal(off.Sample(1, 17, 1, 32, 32), sharp); // the blur's stream leaves the other draws as they were
        Assert.Equal(23, (options with { OutputSize = 224 }).BlurKernelSize);
        Assert.Equal(9, (options with { OutputSize = 96 }).BlurKernelSize);
        Assert.Equal(3, options.BlurKernelSize);
    }
}
