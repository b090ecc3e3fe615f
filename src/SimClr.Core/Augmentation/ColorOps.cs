using static TorchSharp.torch;

namespace SimClr.Core.Augmentation;

/// <summary>
/// torchvision's colour adjustments for float images in [0, 1], batched with one factor per image
/// ([m, C, H, W] images, [m] factors). One-channel images pass saturation, hue and grayscale unchanged, as in torchvision.
/// </summary>
public static class ColorOps
{
    /// <summary>ITU-R 601-2 luma, as PIL's convert("L").</summary>
    public const double RedWeight = 0.299, GreenWeight = 0.587, BlueWeight = 0.114;

    /// <summary>Luma [m, 1, H, W] (the image itself for one channel).</summary>
    public static Tensor Grayscale(Tensor x)
    {
        if (x.shape[1] == 1) return x.alias();
        using var scope = NewDisposeScope();
        var channels = x.unbind(1);
        return (channels[0] * RedWeight + channels[1] * GreenWeight + channels[2] * BlueWeight).unsqueeze(1).MoveToOuterDisposeScope();
    }

    public static Tensor ToGrayscale(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Grayscale(x).expand(x.shape).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>img * f, clamped.</summary>
    public static Tensor Brightness(Tensor x, Tensor factor)
    {
        using var scope = NewDisposeScope();
        return (x * PerImage(factor)).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Blend with the mean luma of the whole image: f * img + (1 - f) * mean, clamped.</summary>
    public static Tensor Contrast(Tensor x, Tensor factor)
    {
        using var scope = NewDisposeScope();
        var mean = Grayscale(x).mean([1, 2, 3], keepdim: true);
        var f = PerImage(factor);
        return (f * x + (1 - f) * mean).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Blend with the per-pixel luma: f * img + (1 - f) * gray, clamped.</summary>
    public static Tensor Saturation(Tensor x, Tensor factor)
    {
        if (x.shape[1] == 1) return x.alias();
        using var scope = NewDisposeScope();
        var f = PerImage(factor);
        return (f * x + (1 - f) * Grayscale(x)).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Rotate the hue by <paramref name="shift"/> turns (in [-0.5, 0.5]) through RGB -> HSV -> RGB.</summary>
    public static Tensor Hue(Tensor x, Tensor shift)
    {
        if (x.shape[1] == 1) return x.alias();
        using var scope = NewDisposeScope();
        var (h, s, v) = RgbToHsv(x);
        h = (h + PerImage(shift).squeeze(1)).remainder(1.0);
        return HsvToRgb(h, s, v).MoveToOuterDisposeScope();
    }

    /// <summary>torchvision's _rgb2hsv: h, s, v each [m, H, W], h in [0, 1).</summary>
    public static (Tensor H, Tensor S, Tensor V) RgbToHsv(Tensor x)
    {
        var c = x.unbind(1);
        Tensor r = c[0], g = c[1], b = c[2];
        var maxc = x.amax([1]);
        var minc = x.amin([1]);
        var equal = maxc.eq(minc);
        var range = maxc - minc;
        var ones = ones_like(maxc);
        var s = range / where(equal, ones, maxc);
        var divisor = where(equal, ones, range);
        var rc = (maxc - r) / divisor;
        var gc = (maxc - g) / divisor;
        var bc = (maxc - b) / divisor;
        var isR = maxc.eq(r);
        var isG = maxc.eq(g).logical_and(isR.logical_not());
        var isB = isR.logical_not().logical_and(maxc.eq(g).logical_not());
        var h = isR.to_type(x.dtype) * (bc - gc) + isG.to_type(x.dtype) * (2.0 + rc - bc) + isB.to_type(x.dtype) * (4.0 + gc - rc);
        h = (h / 6.0 + 1.0).fmod(1.0);
        return (h, s, maxc);
    }

    /// <summary>torchvision's _hsv2rgb: [m, 3, H, W].</summary>
    public static Tensor HsvToRgb(Tensor h, Tensor s, Tensor v)
    {
        var sector = (h * 6.0).floor();
        var f = h * 6.0 - sector;
        var i = sector.to_type(ScalarType.Int64).remainder(6);
        var p = (v * (1.0 - s)).clamp(0, 1);
        var q = (v * (1.0 - s * f)).clamp(0, 1);
        var t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1);
        var mask = i.unsqueeze(1).eq(arange(6, device: h.device).view(1, 6, 1, 1)).to_type(h.dtype);
        Tensor Pick(params Tensor[] bySector) => (mask * stack(bySector, 1)).sum(1);
        return stack([Pick(v, q, p, p, t, v), Pick(t, v, v, q, p, p), Pick(p, p, t, v, v, q)], 1);
    }

    private static Tensor PerImage(Tensor factor) => factor.view(-1, 1, 1, 1);
}
