using SimClr.Core.Randomness;
using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>
/// The embedded default data set: 32x32 RGB images of ten shapes, generated deterministically from a seed, no files.
/// The class is the shape; everything else varies per image (position, size, rotation, aspect, fore- and background
/// colours, pixel noise), so colour is a nuisance that contrastive augmentations teach a network to ignore, and a
/// random backbone's features separate the classes poorly.
/// </summary>
public static class SyntheticShapes
{
    public const int Side = 32;
    public static readonly string[] ClassNames = ["disk", "square", "triangle", "ring", "cross", "frame", "star", "crescent", "bars", "dumbbell"];

    /// <summary>Train and test parts from disjoint random streams of the same seed.</summary>
    public static TrainTestSplit Generate(int trainCount = 10_000, int testCount = 2_000, ulong seed = 0)
    {
        if (trainCount < 1 || testCount < 1) throw new ArgumentOutOfRangeException(nameof(trainCount), "image counts must be >= 1");
        var (trainPixels, trainLabels) = Render(trainCount, seed, stream: 0);
        var (testPixels, testLabels) = Render(testCount, seed, stream: 1);
        var (mean, std) = ChannelStatistics(trainPixels);
        return new TrainTestSplit(
            new ImageDataSet("synthetic-shapes-train", tensor(trainPixels, [trainCount, 3, Side, Side]), trainLabels, ClassNames, mean, std),
            new ImageDataSet("synthetic-shapes-test", tensor(testPixels, [testCount, 3, Side, Side]), testLabels, ClassNames, mean, std));
    }

    private static (byte[] Pixels, int[] Labels) Render(int count, ulong seed, ulong stream)
    {
        var pixels = new byte[count * 3 * Side * Side];
        var labels = new int[count];
        Parallel.For(0, count, i =>
        {
            var rng = new CounterRng(seed, 0x5348415045UL, stream, (ulong)i);
            labels[i] = i % ClassNames.Length; // balanced classes; the order carries no information after shuffling
            RenderOne(ref rng, labels[i], pixels.AsSpan(i * 3 * Side * Side, 3 * Side * Side));
        });
        return (pixels, labels);
    }

    private static void RenderOne(ref CounterRng rng, int shape, Span<byte> output)
    {
        double radius = rng.Uniform(8.5, 13.5);
        double cx = rng.Uniform(radius * 0.8, Side - radius * 0.8);
        double cy = rng.Uniform(radius * 0.8, Side - radius * 0.8);
        double angle = rng.Uniform(0, 2 * Math.PI);
        double aspect = Math.Exp(rng.Uniform(-0.2, 0.2));
        // Colours vary, but not so much that a colour pair identifies an image among a batch: six base hues
        // (shared by many images of every class) moved by less than colour jitter moves them, on a dark, weakly
        // tinted background. Otherwise contrastive learning matches views by colour and never needs the shape.
        var foreground = Hsv(rng.NextInt(6) / 6.0 + rng.Uniform(-0.04, 0.04), rng.Uniform(0.55, 0.9), rng.Uniform(0.65, 0.95));
        var background = Hsv(rng.NextDouble(), rng.Uniform(0, 0.3), rng.Uniform(0.05, 0.35));
        double noise = rng.Uniform(0.01, 0.03);
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        for (int y = 0; y < Side; y++)
        {
            for (int x = 0; x < Side; x++)
            {
                // 2x2 supersampling for smooth edges
                double coverage = 0;
                for (int sy = 0; sy < 2; sy++)
                {
                    for (int sx = 0; sx < 2; sx++)
                    {
                        double px = x + 0.25 + 0.5 * sx - cx, py = y + 0.25 + 0.5 * sy - cy;
                        double u = (cos * px + sin * py) / (radius * aspect);
                        double v = (-sin * px + cos * py) / (radius / aspect);
                        if (Inside(shape, u, v)) coverage += 0.25;
                    }
                }
                double r = background.R * (1 - coverage) + foreground.R * coverage;
                double gg = background.G * (1 - coverage) + foreground.G * coverage;
                double b = background.B * (1 - coverage) + foreground.B * coverage;
                int at = y * Side + x;
                output[at] = ToByte(r + noise * rng.NextGaussian());
                output[Side * Side + at] = ToByte(gg + noise * rng.NextGaussian());
                output[2 * Side * Side + at] = ToByte(b + noise * rng.NextGaussian());
            }
        }
    }

    /// <summary>Shape membership in the shape's own frame, unit radius.</summary>
    private static bool Inside(int shape, double u, double v)
    {
        double r = Math.Sqrt(u * u + v * v);
        double au = Math.Abs(u), av = Math.Abs(v);
        return shape switch
        {
            0 => r <= 1,
            1 => Math.Max(au, av) <= 0.8,
            2 => v >= -0.55 && Math.Sqrt(3) * au + v <= 0.95,
            3 => r <= 1 && r >= 0.6,
            4 => (au <= 0.28 && av <= 1) || (av <= 0.28 && au <= 1),
            5 => Math.Max(au, av) <= 0.9 && Math.Max(au, av) >= 0.6,
            6 => r <= 0.4 + 0.6 * Math.Pow((Math.Cos(5 * Math.Atan2(v, u)) + 1) / 2, 2),
            7 => r <= 1 && (u - 0.5) * (u - 0.5) + v * v > 0.75 * 0.75,
            8 => r <= 1 && Math.Cos(u * Math.PI * 2.5) > 0.2,
            9 => (u - 0.55) * (u - 0.55) + v * v <= 0.42 * 0.42 || (u + 0.55) * (u + 0.55) + v * v <= 0.42 * 0.42 || (au <= 0.55 && av <= 0.12),
            _ => throw new ArgumentOutOfRangeException(nameof(shape)),
        };
    }

    private static (double R, double G, double B) Hsv(double h, double s, double v)
    {
        h -= Math.Floor(h);
        int i = (int)(h * 6) % 6;
        double f = h * 6 - Math.Floor(h * 6), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
        return i switch { 0 => (v, t, p), 1 => (q, v, p), 2 => (p, v, t), 3 => (p, q, v), 4 => (t, p, v), _ => (v, p, q) };
    }

    private static double Clamp01(double x) => Math.Clamp(x, 0, 1);

    private static byte ToByte(double x) => (byte)Math.Round(Clamp01(x) * 255);

    private static (double[] Mean, double[] Std) ChannelStatistics(byte[] pixels)
    {
        var mean = new double[3];
        var std = new double[3];
        int plane = Side * Side, images = pixels.Length / (3 * plane);
        for (int c = 0; c < 3; c++)
        {
            double sum = 0, squares = 0;
            for (int i = 0; i < images; i++)
            {
                int start = (i * 3 + c) * plane;
                for (int k = 0; k < plane; k++)
                {
                    double x = pixels[start + k] / 255.0;
                    sum += x;
                    squares += x * x;
                }
            }
            long n = (long)images * plane;
            mean[c] = Math.Round(sum / n, 4);
            std[c] = Math.Round(Math.Sqrt(Math.Max(squares / n - (sum / n) * (sum / n), 1e-12)), 4);
        }
        return (mean, std);
    }
}
