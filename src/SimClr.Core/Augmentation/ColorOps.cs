using SimClr.Core.Runtime;
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
        return x.mul(LumaWeights(x)).sum(1, keepdim: true).MoveToOuterDisposeScope();
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
        return x.mul(PerImage(factor)).clamp_(Scalars.Zero, Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>Blend with the mean luma of the whole image: f * img + (1 - f) * mean = mean + f * (img - mean), clamped.</summary>
    public static Tensor Contrast(Tensor x, Tensor factor)
    {
        using var scope = NewDisposeScope();
        // the mean of the luma is the luma of the channel means: one pass over the pixels
        var channelMeans = x.mean([2, 3], keepdim: true);
        var mean = x.shape[1] == 1 ? channelMeans : channelMeans.mul(LumaWeights(x)).sum(1, keepdim: true);
        return x.Minus(mean).mul_(PerImage(factor)).PlusInPlace(mean).clamp_(Scalars.Zero, Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>Blend with the per-pixel luma: f * img + (1 - f) * gray = gray + f * (img - gray), clamped.</summary>
    public static Tensor Saturation(Tensor x, Tensor factor)
    {
        if (x.shape[1] == 1) return x.alias();
        using var scope = NewDisposeScope();
        var gray = Grayscale(x);
        return x.Minus(gray).mul_(PerImage(factor)).PlusInPlace(gray).clamp_(Scalars.Zero, Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rotate the hue by <paramref name="shift"/> turns (in [-0.5, 0.5]), as torchvision's RGB -> HSV -> RGB round trip,
    /// in the compact form of HSV -> RGB: channel n in (r, g, b) = V - C * clamp(min(k, 4 - k), 0, 1) with
    /// k = (n' + 6H) mod 6, n' = (5, 3, 1), V = max, C = max - min. Measured 7x faster than the six-sector form on CPU.
    /// </summary>
    public static Tensor Hue(Tensor x, Tensor shift)
    {
        if (x.shape[1] == 1) return x.alias();
        using var scope = NewDisposeScope();
        var maximum = x.amax([1], keepdim: true);
        var chroma = maximum.Minus(x.amin([1], keepdim: true));
        Tensor r = x.narrow(1, 0, 1), g = x.narrow(1, 1, 1), b = x.narrow(1, 2, 1);
        // 6H = (g - b) / C if r is the max, (b - r) / C + 2 if g is, (r - g) / C + 4 if b is (ties as torchvision: r, then g).
        // Where C = 0 every difference is 0, so any positive divisor gives H = 0 there. (argmax over channels is 70x slower.)
        using var tiny = Scalars.Of(1e-12);
        var hue6 = where(r.eq(maximum), g.Minus(b), where(g.eq(maximum), b.Minus(r).PlusInPlace(chroma.mul(Scalars.Two)), r.Minus(g).PlusInPlace(chroma.mul(Scalars.Four))))
            .div_(chroma.clamp_min(tiny)).PlusInPlace(PerImage(shift).mul(Scalars.Six)).remainder_(Scalars.Six);
        var k = hue6.Plus(tensor(new float[] { 5, 3, 1 }, device: x.device).view(1, 3, 1, 1)).remainder_(Scalars.Six);
        var ramp = k.neg().ShiftInPlace(Scalars.Four).minimum(k).clamp_(Scalars.Zero, Scalars.One);
        return maximum.Minus(ramp.mul_(chroma)).MoveToOuterDisposeScope();
    }

    private static Tensor PerImage(Tensor factor) => factor.view(-1, 1, 1, 1);

    private static Tensor LumaWeights(Tensor x) =>
        tensor(new float[] { (float)RedWeight, (float)GreenWeight, (float)BlueWeight }, device: x.device).view(1, 3, 1, 1).to_type(x.dtype);
}
