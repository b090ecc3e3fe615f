namespace SimClr.Core.Models;

/// <summary>torchvision's ResNet depths this project builds (model.arch).</summary>
public enum ResNetArch
{
    /// <summary>BasicBlocks [2, 2, 2, 2], 512 features at full width: the seed's network.</summary>
    Resnet18,

    /// <summary>BasicBlocks [3, 4, 6, 3], 512 features.</summary>
    Resnet34,

    /// <summary>Bottlenecks [3, 4, 6, 3] (expansion 4), 2048 features: the SimCLR paper's headline network.</summary>
    Resnet50,
}

/// <summary>The first layers (model.stem): cifar (3x3 stride 1, no max-pool; SimCLR appendix B.9) or imagenet
/// (torchvision's 7x7 stride 2 and 3x3 stride-2 max-pool). Auto: cifar for views of up to 64 pixels, else imagenet.</summary>
public enum ResNetStem
{
    Auto,
    Cifar,
    Imagenet,
}

/// <summary>Shape of the ResNet backbone. Full width (1.0) is torchvision's; tests and CPU runs narrow it.</summary>
/// <param name="Width">Multiplier on torchvision's stage widths 64/128/256/512 (0.125 gives 8/16/32/64).</param>
/// <param name="InputChannels">3 for RGB (CIFAR-10), 1 for grey images (Fashion-MNIST).</param>
/// <param name="Arch">The depth and block (<see cref="ResNetArch"/>).</param>
/// <param name="Stem">cifar or imagenet (<see cref="ResNetStem.Auto"/> is resolved before a network is built: <see cref="For"/>).</param>
public sealed record ResNetOptions(double Width = 1.0, int InputChannels = 3, ResNetArch Arch = ResNetArch.Resnet18, ResNetStem Stem = ResNetStem.Cifar)
{
    public static readonly int[] StageWidths = [64, 128, 256, 512];

    /// <summary>Views up to this many pixels a side get the CIFAR stem when the stem is auto.</summary>
    public const int LargestCifarStemImage = 64;

    /// <summary>Options with an auto stem resolved by the size of the views the network sees.</summary>
    public static ResNetOptions For(double width, int inputChannels, ResNetArch arch, ResNetStem stem, int imageSize) =>
        new(width, inputChannels, arch, stem != ResNetStem.Auto ? stem : imageSize <= LargestCifarStemImage ? ResNetStem.Cifar : ResNetStem.Imagenet);

    /// <summary>The "planes" of a stage: the width of its 3x3 convolutions.</summary>
    public int Channels(int stage) => Math.Max(1, (int)Math.Round(StageWidths[stage] * Width));

    /// <summary>Blocks per stage.</summary>
    public int[] Blocks => Arch switch
    {
        ResNetArch.Resnet18 => [2, 2, 2, 2],
        _ => [3, 4, 6, 3],
    };

    public bool UsesBottlenecks => Arch == ResNetArch.Resnet50;

    /// <summary>A block's output channels per plane: 4 for bottlenecks, 1 for basic blocks.</summary>
    public int Expansion => UsesBottlenecks ? Bottleneck.Expansion : 1;

    /// <summary>Channels out of a stage.</summary>
    public int StageOutput(int stage) => Channels(stage) * Expansion;

    /// <summary>Dimension of the backbone's pooled features (512 at full width; 2048 for resnet50).</summary>
    public int FeatureDim => StageOutput(3);

    /// <summary>torchvision's function name: resnet18, resnet34, resnet50.</summary>
    public string ArchName => Arch.ToString().ToLowerInvariant();

    public string StemName => Stem.ToString().ToLowerInvariant();

    public void Validate()
    {
        if (!(Width > 0) || double.IsInfinity(Width)) throw new ArgumentOutOfRangeException(nameof(Width), Width, "width multiplier must be > 0");
        if (InputChannels < 1) throw new ArgumentOutOfRangeException(nameof(InputChannels), InputChannels, "input channels must be >= 1");
        if (!Enum.IsDefined(Arch)) throw new ArgumentOutOfRangeException(nameof(Arch), Arch, "not an architecture");
        if (Stem is not (ResNetStem.Cifar or ResNetStem.Imagenet)) throw new ArgumentOutOfRangeException(nameof(Stem), Stem, "resolve the stem (cifar or imagenet) before building: ResNetOptions.For");
    }
}
