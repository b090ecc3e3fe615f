using SimClr.Core.Augmentation;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Augmentation;

/// <summary>Both implementations (fused CPU loops, tensor operations) held to the same float64 references.</summary>
public sealed class CpuKernelTests : ViewAugmenterTests
{
    protected override AugmentationKernel Kernel => AugmentationKernel.Cpu;
}

public sealed class TensorKernelTests : ViewAugmenterTests
{
    protected override AugmentationKernel Kernel => AugmentationKernel.Tensor;

    /// <summary>The tensor kernel on each test device (the GPU path) against the fused CPU kernel, itself held to the float64 references.</summary>
    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void The_kernels_agree_on_a_batch_of_random_views(string device)
    {
        var augmenter = Make(new AugmentationOptions(), [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]);
        var cpu = new ViewAugmenter(new AugmentationOptions(), 1, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]) { Kernel = AugmentationKernel.Cpu };
        using var scope = NewDisposeScope();
        var images = tensor(RandomPixels(64 * 3 * 32 * 32, seed: 12), [64, 3, 32, 32]);
        long[] indices = Enumerable.Range(0, 64).Select(i => (long)i).ToArray();
        var onDevice = augmenter.TwoViews(images.to(TestDevices.Get(device)), indices, 3);
        Assert.Equal(TestDevices.Get(device).type, onDevice.device_type);
        var difference = onDevice.cpu().sub(cpu.TwoViews(images, indices, 3)).abs().max().item<float>();
        Assert.True(difference < 1e-4, $"max difference {difference}");
    }
}

public abstract class ViewAugmenterTests
{
    private const int Side = 12;

    protected abstract AugmentationKernel Kernel { get; }

    protected ViewAugmenter Make(AugmentationOptions options, double[] mean, double[] std) => new(options, seed: 1, mean, std) { Kernel = Kernel };

    /// <summary>An augmenter whose normalisation is the identity, so outputs are pixel values in [0, 1].</summary>
    private ViewAugmenter Plain(int channels = 3, int outputSize = Side) =>
        Make(new AugmentationOptions { OutputSize = outputSize }, Enumerable.Repeat(0.0, channels).ToArray(), Enumerable.Repeat(1.0, channels).ToArray());

    protected static byte[] RandomPixels(int count, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private static double[][] Planes(byte[] pixels, int channels, int plane) =>
        Enumerable.Range(0, channels).Select(c => pixels.Skip(c * plane).Take(plane).Select(b => b / 255.0).ToArray()).ToArray();

    private static void AssertClose(double[][] expected, Tensor actual, double tolerance = 2e-5)
    {
        var flat = actual.to_type(ScalarType.Float64).data<double>().ToArray();
        int plane = expected[0].Length;
        for (int c = 0; c < expected.Length; c++)
            for (int k = 0; k < plane; k++)
                Assert.True(Math.Abs(expected[c][k] - flat[c * plane + k]) <= tolerance, $"channel {c} pixel {k}: expected {expected[c][k]}, got {flat[c * plane + k]}");
    }

    private static ViewParameters Only(int height, int width) => ViewParameters.Identity(height, width);

    [Theory]
    [InlineData(0, 0, Side, Side, false)]
    [InlineData(3, 5, 6, 4, false)]
    [InlineData(3, 5, 6, 4, true)]
    [InlineData(1, 0, 11, 12, true)]
    [InlineData(7, 9, 2, 3, false)]
    public void Resized_crop_and_flip_match_the_float64_reference(int top, int left, int h, int w, bool flip)
    {
        byte[] pixels = RandomPixels(3 * Side * Side, seed: top * 100 + left);
        var expected = ColourReference.ResizedCrop(Planes(pixels, 3, Side * Side), Side, Side, top, left, h, w, Side, flip);
        using var scope = NewDisposeScope();
        var view = Plain().Apply(tensor(pixels, [1, 3, Side, Side]), [Only(Side, Side) with { Top = top, Left = left, Height = h, Width = w, Flip = flip }]);
        AssertClose(expected, view[0]);
    }

    /// <summary>A blurred view is the unblurred view convolved, in float64, with the outer product of torchvision's
    /// 1-D kernel over reflect-padded planes (the blur commutes with the per-channel normalisation: its weights sum to 1).</summary>
    [Theory]
    [InlineData(24, 0.1, 0.7)]  // kernel 3
    [InlineData(48, 0.1, 1.9)]  // kernel 5
    [InlineData(20, 0.5, 2.0)]  // kernel 11: a radius of half the side
    public void Gaussian_blur_matches_the_float64_reference(int size, double fraction, double sigma)
    {
        var options = new AugmentationOptions { OutputSize = size, BlurProbability = 1, BlurKernelFraction = fraction };
        var augmenter = Make(options, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]);
        using var scope = NewDisposeScope();
        var images = tensor(RandomPixels(2 * 3 * 30 * 30, seed: size), [2, 3, 30, 30]);
        var sharp = Only(30, 30) with { Top = 2, Left = 3, Height = 25, Width = 21, Flip = true };
        var blurred = augmenter.Apply(images, [sharp with { BlurSigma = sigma }, sharp]);
        var plain = augmenter.Apply(images, [sharp, sharp]);
        Assert.True(blurred[1].equal(plain[1]).all().item<bool>(), "a view without blur is untouched");
        int k = options.BlurKernelSize, r = k / 2;
        var w = tensor(GaussianBlur.Kernel(k, sigma), float64);
        var kernel2d = w.outer(w).view(1, 1, k, k).repeat(3, 1, 1, 1);
        var padded = nn.functional.pad(plain[0].to(float64).unsqueeze(0), [r, r, r, r], TorchSharp.PaddingModes.Reflect);
        var expected = nn.functional.conv2d(padded, kernel2d, groups: 3)[0];
        double error = blurred[0].to(float64).sub(expected).abs().max().item<double>();
        Assert.True(error < 2e-5, $"blur off by {error} (kernel {k})");
        Assert.True(blurred[0].sub(plain[0]).abs().max().item<float>() > 0.05, "the blur changed the view");
    }

    [Fact]
    public void Resizing_to_another_output_size_matches_the_reference()
    {
        byte[] pixels = RandomPixels(3 * Side * Side, seed: 9);
        var expected = ColourReference.ResizedCrop(Planes(pixels, 3, Side * Side), Side, Side, 2, 1, 9, 10, 20, flip: false);
        using var scope = NewDisposeScope();
        var view = Plain(outputSize: 20).Apply(tensor(pixels, [1, 3, Side, Side]), [Only(Side, Side) with { Top = 2, Left = 1, Height = 9, Width = 10 }]);
        Assert.Equal(new long[] { 1, 3, 20, 20 }, view.shape);
        AssertClose(expected, view[0]);
    }

    public static TheoryData<JitterOp, double> SingleAdjustments => new()
    {
        { JitterOp.Brightness, 0.6 }, { JitterOp.Brightness, 1.4 }, { JitterOp.Contrast, 0.6 }, { JitterOp.Contrast, 1.4 },
        { JitterOp.Saturation, 0.6 }, { JitterOp.Saturation, 1.4 }, { JitterOp.Hue, 0.1 }, { JitterOp.Hue, -0.1 }, { JitterOp.Hue, 0.5 },
    };

    [Theory]
    [MemberData(nameof(SingleAdjustments))]
    public void Each_colour_adjustment_matches_its_float64_formula(JitterOp op, double factor)
    {
        byte[] pixels = RandomPixels(3 * Side * Side, seed: (int)op * 10 + (int)(factor * 10));
        var image = Planes(pixels, 3, Side * Side);
        var (parameters, expected) = op switch
        {
            JitterOp.Brightness => (Only(Side, Side) with { Jitter = true, Brightness = factor }, ColourReference.Brightness(image, factor)),
            JitterOp.Contrast => (Only(Side, Side) with { Jitter = true, Contrast = factor }, ColourReference.Contrast(image, factor)),
            JitterOp.Saturation => (Only(Side, Side) with { Jitter = true, Saturation = factor }, ColourReference.Saturation(image, factor)),
            _ => (Only(Side, Side) with { Jitter = true, Hue = factor }, ColourReference.Hue(image, factor)),
        };
        using var scope = NewDisposeScope();
        AssertClose(expected, Plain().Apply(tensor(pixels, [1, 3, Side, Side]), [parameters])[0]);
    }

    [Fact]
    public void Grayscale_uses_weights_0_299_0_587_0_114_in_every_channel()
    {
        byte[] pixels = [.. Enumerable.Repeat((byte)255, Side * Side), .. new byte[2 * Side * Side]]; // pure red
        using var scope = NewDisposeScope();
        var view = Plain().Apply(tensor(pixels, [1, 3, Side, Side]), [Only(Side, Side) with { Grayscale = true }]);
        Assert.True(view.sub(0.299).abs().max().item<float>() < 1e-6);
        byte[] random = RandomPixels(3 * Side * Side, seed: 2);
        AssertClose(ColourReference.Grayscale(Planes(random, 3, Side * Side)),
            Plain().Apply(tensor(random, [1, 3, Side, Side]), [Only(Side, Side) with { Grayscale = true }])[0]);
    }

    [Fact]
    public void Jitter_applies_the_adjustments_in_each_views_own_order()
    {
        byte[] pixels = RandomPixels(3 * Side * Side, seed: 4);
        var image = Planes(pixels, 3, Side * Side);
        var brightnessFirst = Only(Side, Side) with
        {
            Jitter = true,
            Brightness = 1.5,
            Contrast = 0.5,
            Hue = 0.2,
            Order = JitterOrder.From(JitterOp.Brightness, JitterOp.Hue, JitterOp.Saturation, JitterOp.Contrast),
        };
        var contrastFirst = brightnessFirst with { Order = JitterOrder.From(JitterOp.Contrast, JitterOp.Saturation, JitterOp.Brightness, JitterOp.Hue) };
        using var scope = NewDisposeScope();
        var both = Plain().Apply(tensor(pixels, [1, 3, Side, Side]).repeat(2, 1, 1, 1), [brightnessFirst, contrastFirst]);
        AssertClose(ColourReference.Contrast(ColourReference.Hue(ColourReference.Brightness(image, 1.5), 0.2), 0.5), both[0]);
        AssertClose(ColourReference.Hue(ColourReference.Brightness(ColourReference.Contrast(image, 0.5), 1.5), 0.2), both[1]);
    }

    [Fact]
    public void One_channel_images_get_brightness_and_contrast_but_no_saturation_hue_or_grayscale()
    {
        byte[] pixels = RandomPixels(Side * Side, seed: 6);
        var image = Planes(pixels, 1, Side * Side);
        var p = Only(Side, Side) with { Jitter = true, Brightness = 1.2, Contrast = 0.7, Saturation = 0.1, Hue = 0.3, Grayscale = true };
        using var scope = NewDisposeScope();
        var view = Plain(channels: 1).Apply(tensor(pixels, [1, 1, Side, Side]), [p]);
        AssertClose(ColourReference.Contrast(ColourReference.Brightness(image, 1.2), 0.7), view[0]);
    }

    [Fact]
    public void Normalise_subtracts_the_mean_and_divides_by_the_std_per_channel()
    {
        byte[] pixels = RandomPixels(3 * Side * Side, seed: 8);
        var augmenter = Make(AugmentationOptions.None with { OutputSize = Side }, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]);
        using var scope = NewDisposeScope();
        var view = augmenter.Evaluate(tensor(pixels, [1, 3, Side, Side]));
        var image = Planes(pixels, 3, Side * Side);
        double[] mean = [0.4914, 0.4822, 0.4465], std = [0.2023, 0.1994, 0.2010];
        AssertClose(image.Select((c, i) => c.Select(v => (v - mean[i]) / std[i]).ToArray()).ToArray(), view[0], 1e-4);
    }

    [Fact]
    public void The_same_image_index_gets_the_same_views_in_any_batch()
    {
        var augmenter = Make(new AugmentationOptions(), [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]);
        var images = Enumerable.Range(0, 6).Select(i => RandomPixels(3 * 32 * 32, seed: 100 + i)).ToArray();
        Tensor Batch(params int[] which) => tensor(which.SelectMany(i => images[i]).ToArray(), [which.Length, 3, 32, 32]);
        using var scope = NewDisposeScope();
        var first = augmenter.TwoViews(Batch(0, 1, 2, 3), [10, 11, 12, 13], epoch: 5);
        var second = augmenter.TwoViews(Batch(5, 2, 4), [15, 12, 14], epoch: 5);
        // image 12: rows 4,5 of the first batch, rows 2,3 of the second
        Assert.True(first[4..6].allclose(second[2..4], rtol: 0, atol: 1e-6));
        Assert.False(first[4].allclose(first[5], rtol: 0, atol: 1e-3)); // its two views differ
        var otherEpoch = augmenter.TwoViews(Batch(2), [12], epoch: 6);
        Assert.False(otherEpoch[0].allclose(first[4], rtol: 0, atol: 1e-3));
        // a single view of one image, asked for on its own, is the same as within the pair
        var alone = augmenter.Views(Batch(2), [(12L, 1)], epoch: 5);
        Assert.True(alone[0].allclose(first[5], rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Views_of_a_batch_are_interleaved_pairs_with_the_output_shape()
    {
        var augmenter = Make(new AugmentationOptions { OutputSize = 16 }, [0.5], [0.25]);
        using var scope = NewDisposeScope();
        var views = augmenter.TwoViews(randint(0, 256, [3, 1, 28, 28]).to_type(ScalarType.Byte), [0, 1, 2], epoch: 0);
        Assert.Equal(new long[] { 6, 1, 16, 16 }, views.shape);
        Assert.Equal(ScalarType.Float32, views.dtype);
    }

    [Fact]
    public void Bad_inputs_are_rejected_with_a_message()
    {
        var augmenter = Plain();
        using var scope = NewDisposeScope();
        Assert.Contains("channels", Assert.Throws<ArgumentException>(() => augmenter.Evaluate(zeros([1, 1, 8, 8], ScalarType.Byte))).Message);
        Assert.Contains("2 images for 1 views", Assert.Throws<ArgumentException>(() => augmenter.Views(zeros([2, 3, 8, 8], ScalarType.Byte), [(0L, 0)], 0)).Message);
        var e = Assert.Throws<ArgumentException>(() => new ViewAugmenter(new AugmentationOptions { FlipProbability = 2, Hue = 0.7 }, 0, [0.5], [0.5]));
        Assert.Contains("flipProbability", e.Message);
        Assert.Contains("hue", e.Message);
    }
}
