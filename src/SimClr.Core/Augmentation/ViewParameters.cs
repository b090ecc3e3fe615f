namespace SimClr.Core.Augmentation;

/// <summary>The colour-jitter adjustments, in the numbering of ColorJitter's random order.</summary>
public enum JitterOp
{
    Brightness = 0,
    Contrast = 1,
    Saturation = 2,
    Hue = 3,
}

/// <summary>
/// Every random choice for one view of one image. Factors are torchvision's: brightness/contrast/saturation
/// multiply (1 = unchanged), hue shifts in turns (0 = unchanged). <see cref="JitterOrder"/> is a permutation of the
/// four adjustments.
/// </summary>
public readonly record struct ViewParameters(
    int Top, int Left, int Height, int Width,
    bool Flip,
    bool Jitter, double Brightness, double Contrast, double Saturation, double Hue, JitterOrder Order,
    bool Grayscale)
{
    /// <summary>The whole image, nothing else: the evaluation transform.</summary>
    public static ViewParameters Identity(int height, int width) =>
        new(0, 0, height, width, false, false, 1, 1, 1, 0, JitterOrder.Default, false);
}

/// <summary>A permutation of the four jitter adjustments, packed two bits each.</summary>
public readonly record struct JitterOrder(byte Packed)
{
    public static JitterOrder Default { get; } = From(JitterOp.Brightness, JitterOp.Contrast, JitterOp.Saturation, JitterOp.Hue);

    public JitterOp this[int position] => (JitterOp)((Packed >> (2 * position)) & 3);

    public static JitterOrder From(JitterOp first, JitterOp second, JitterOp third, JitterOp fourth)
    {
        if (new[] { first, second, third, fourth }.Distinct().Count() != 4) throw new ArgumentException("not a permutation of the four adjustments");
        return new JitterOrder((byte)((int)first | (int)second << 2 | (int)third << 4 | (int)fourth << 6));
    }

    public override string ToString() => $"{this[0]}>{this[1]}>{this[2]}>{this[3]}";
}
