namespace SimClr.Core.Augmentation;

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
