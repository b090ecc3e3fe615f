namespace SimClr.Core.Augmentation;

/// <summary>The colour-jitter adjustments, in the numbering of ColorJitter's random order.</summary>
public enum JitterOp
{
    Brightness = 0,
    Contrast = 1,
    Saturation = 2,
    Hue = 3,
}
