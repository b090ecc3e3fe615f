namespace SimClr.Core.Augmentation;

/// <summary>
/// Every random choice for one view of one image. Factors are torchvision's: brightness/contrast/saturation
/// multiply (1 = unchanged), hue shifts in turns (0 = unchanged). <see cref="JitterOrder"/> is a permutation of the
/// four adjustments. <see cref="BlurSigma"/> 0: no blur.
/// </summary>
public readonly record struct ViewParameters(
    int Top, int Left, int Height, int Width,
    bool Flip,
    bool Jitter, double Brightness, double Contrast, double Saturation, double Hue, JitterOrder Order,
    bool Grayscale,
    double BlurSigma = 0)
{
    /// <summary>The whole image, nothing else: the evaluation transform.</summary>
    public static ViewParameters Identity(int height, int width) =>
        new(0, 0, height, width, false, false, 1, 1, 1, 0, JitterOrder.Default, false);
}
