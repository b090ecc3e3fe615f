namespace SimClr.Core.Tests.Augmentation;

/// <summary>Float64, per-pixel reference formulas (torchvision's definitions; HSV as Python's colorsys), independent of the tensor code.</summary>
internal static class ColourReference
{
    public static double Luma(double r, double g, double b) => 0.299 * r + 0.587 * g + 0.114 * b;

    public static double Clamp(double x) => Math.Clamp(x, 0, 1);

    /// <summary>image: [C][H*W] in [0, 1].</summary>
    public static double[][] Brightness(double[][] image, double f) => image.Select(c => c.Select(v => Clamp(v * f)).ToArray()).ToArray();

    public static double[][] Contrast(double[][] image, double f)
    {
        double mean = image.Length == 1 ? image[0].Average() : Enumerable.Range(0, image[0].Length).Average(k => Luma(image[0][k], image[1][k], image[2][k]));
        return image.Select(c => c.Select(v => Clamp(f * v + (1 - f) * mean)).ToArray()).ToArray();
    }

    public static double[][] Saturation(double[][] image, double f) =>
        image.Select(c => c.Select((v, k) => Clamp(f * v + (1 - f) * Luma(image[0][k], image[1][k], image[2][k]))).ToArray()).ToArray();

    public static double[][] Grayscale(double[][] image) =>
        image.Select(_ => image[0].Select((v, k) => Luma(image[0][k], image[1][k], image[2][k])).ToArray()).ToArray();

    public static double[][] Hue(double[][] image, double shift)
    {
        var result = image.Select(c => new double[c.Length]).ToArray();
        for (int k = 0; k < image[0].Length; k++)
        {
            var (h, s, v) = RgbToHsv(image[0][k], image[1][k], image[2][k]);
            h = ((h + shift) % 1 + 1) % 1;
            var (r, g, b) = HsvToRgb(h, s, v);
            result[0][k] = r;
            result[1][k] = g;
            result[2][k] = b;
        }
        return result;
    }

    // Python's colorsys
    private static (double H, double S, double V) RgbToHsv(double r, double g, double b)
    {
        double max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        if (min == max) return (0, 0, max);
        double s = (max - min) / max;
        double rc = (max - r) / (max - min), gc = (max - g) / (max - min), bc = (max - b) / (max - min);
        double h = r == max ? bc - gc : g == max ? 2 + rc - bc : 4 + gc - rc;
        return ((h / 6 % 1 + 1) % 1, s, max);
    }

    private static (double R, double G, double B) HsvToRgb(double h, double s, double v)
    {
        if (s == 0) return (v, v, v);
        int i = (int)(h * 6);
        double f = h * 6 - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
        return (i % 6) switch { 0 => (v, t, p), 1 => (q, v, p), 2 => (p, v, t), 3 => (p, q, v), 4 => (t, p, v), _ => (v, p, q) };
    }

    /// <summary>Crop [top, top+h) x [left, left+w), resize to size x size bilinearly (half-pixel centres, edges clamped
    /// inside the crop, as resizing the cropped image), then mirror if asked.</summary>
    public static double[][] ResizedCrop(double[][] image, int height, int width, int top, int left, int h, int w, int size, bool flip)
    {
        var result = image.Select(_ => new double[size * size]).ToArray();
        for (int oy = 0; oy < size; oy++)
        {
            double sy = Math.Clamp((oy + 0.5) * h / size - 0.5, 0, h - 1);
            int y0 = (int)Math.Floor(sy), y1 = Math.Min(y0 + 1, h - 1);
            double ay = sy - y0;
            for (int ox = 0; ox < size; ox++)
            {
                double sx = Math.Clamp((ox + 0.5) * w / size - 0.5, 0, w - 1);
                int x0 = (int)Math.Floor(sx), x1 = Math.Min(x0 + 1, w - 1);
                double ax = sx - x0;
                int target = oy * size + (flip ? size - 1 - ox : ox);
                for (int c = 0; c < image.Length; c++)
                {
                    double At(int y, int x) => image[c][(top + y) * width + left + x];
                    result[c][target] = (1 - ay) * ((1 - ax) * At(y0, x0) + ax * At(y0, x1)) + ay * ((1 - ax) * At(y1, x0) + ax * At(y1, x1));
                }
            }
        }
        return result;
    }
}
