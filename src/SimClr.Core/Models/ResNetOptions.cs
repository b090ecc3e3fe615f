namespace SimClr.Core.Models;

/// <summary>Shape of the CIFAR-stem ResNet-18. Full width (1.0) is the seed's network; tests and CPU runs narrow it.</summary>
/// <param name="Width">Multiplier on torchvision's stage widths 64/128/256/512 (0.125 gives 8/16/32/64).</param>
/// <param name="InputChannels">3 for RGB (CIFAR-10), 1 for grey images (Fashion-MNIST).</param>
public sealed record ResNetOptions(double Width = 1.0, int InputChannels = 3)
{
    public static readonly int[] StageWidths = [64, 128, 256, 512];

    public int Channels(int stage) => Math.Max(1, (int)Math.Round(StageWidths[stage] * Width));

    /// <summary>Dimension of the backbone's pooled features (512 at full width).</summary>
    public int FeatureDim => Channels(3);

    public void Validate()
    {
        if (!(Width > 0) || double.IsInfinity(Width)) throw new ArgumentOutOfRangeException(nameof(Width), Width, "width multiplier must be > 0");
        if (InputChannels < 1) throw new ArgumentOutOfRangeException(nameof(InputChannels), InputChannels, "input channels must be >= 1");
    }
}
