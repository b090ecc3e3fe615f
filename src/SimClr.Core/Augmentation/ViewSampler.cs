using SimClr.Core.Randomness;

namespace SimClr.Core.Augmentation;

/// <summary>
/// Draws a view's parameters as a pure function of (run seed, epoch, image index, view): the same image gets the
/// same two views in whatever batch, shard, chunk or worker it lands. Each operation reads its own random stream,
/// so switching one off does not change the others. Sampling follows torchvision's transforms.
/// </summary>
public sealed class ViewSampler(AugmentationOptions options, ulong seed)
{
    private const ulong CropStream = 1, FlipStream = 2, JitterStream = 3, GrayStream = 4, BlurStream = 5;

    public AugmentationOptions Options { get; } = options;

    public ulong Seed { get; } = seed;

    public ViewParameters Sample(long epoch, long index, int view, int height, int width)
    {
        var (top, left, h, w) = Options.Crop ? SampleCrop(Stream(epoch, index, view, CropStream), height, width) : (0, 0, height, width);

        var flipRng = Stream(epoch, index, view, FlipStream);
        bool flip = flipRng.NextDouble() < Options.FlipProbability;

        var jitterRng = Stream(epoch, index, view, JitterStream);
        bool jitter = jitterRng.NextDouble() < Options.JitterProbability;
        var order = RandomOrder(ref jitterRng);
        double brightness = Factor(ref jitterRng, Options.Brightness);
        double contrast = Factor(ref jitterRng, Options.Contrast);
        double saturation = Factor(ref jitterRng, Options.Saturation);
        double hue = Options.Hue > 0 ? jitterRng.Uniform(-Options.Hue, Options.Hue) : 0;
        if (!jitter) (brightness, contrast, saturation, hue) = (1, 1, 1, 0);

        var grayRng = Stream(epoch, index, view, GrayStream);
        bool gray = grayRng.NextDouble() < Options.GrayscaleProbability;

        double sigma = 0;
        if (Options.BlurProbability > 0)
        {
            var blurRng = Stream(epoch, index, view, BlurStream);
            if (blurRng.NextDouble() < Options.BlurProbability) sigma = blurRng.Uniform(Options.BlurSigmaMin, Options.BlurSigmaMax);
        }

        return new ViewParameters(top, left, h, w, flip, jitter, brightness, contrast, saturation, hue, order, gray, sigma);
    }

    private CounterRng Stream(long epoch, long index, int view, ulong op) => new(Seed, (ulong)epoch, (ulong)index, (ulong)view, op);

    /// <summary>torchvision's ColorJitter range for a multiplicative factor: U[max(0, 1 - s), 1 + s].</summary>
    private static double Factor(ref CounterRng rng, double strength) =>
        strength > 0 ? rng.Uniform(Math.Max(0, 1 - strength), 1 + strength) : 1;

    private static JitterOrder RandomOrder(ref CounterRng rng)
    {
        Span<JitterOp> ops = [JitterOp.Brightness, JitterOp.Contrast, JitterOp.Saturation, JitterOp.Hue];
        for (int i = 3; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (ops[i], ops[j]) = (ops[j], ops[i]);
        }
        return JitterOrder.From(ops[0], ops[1], ops[2], ops[3]);
    }

    /// <summary>torchvision's RandomResizedCrop.get_params: ten tries of (area, log-ratio), then the central fallback.</summary>
    private (int Top, int Left, int Height, int Width) SampleCrop(CounterRng rng, int height, int width)
    {
        double area = height * width;
        double logMin = Math.Log(Options.CropRatioMin), logMax = Math.Log(Options.CropRatioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * rng.Uniform(Options.CropScaleMin, Options.CropScaleMax);
            double aspect = Math.Exp(rng.Uniform(logMin, logMax));
            int w = (int)Math.Round(Math.Sqrt(target * aspect)); // Python's round: half to even, as here
            int h = (int)Math.Round(Math.Sqrt(target / aspect));
            if (w > 0 && w <= width && h > 0 && h <= height)
                return (rng.NextInt(height - h + 1), rng.NextInt(width - w + 1), h, w);
        }
        double inRatio = (double)width / height;
        int fw, fh;
        if (inRatio < Options.CropRatioMin) { fw = width; fh = (int)Math.Round(fw / Options.CropRatioMin); }
        else if (inRatio > Options.CropRatioMax) { fh = height; fw = (int)Math.Round(fh * Options.CropRatioMax); }
        else { fw = width; fh = height; }
        return ((height - fh) / 2, (width - fw) / 2, fh, fw);
    }
}
