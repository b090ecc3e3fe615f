namespace SimClr.Core.Augmentation;

/// <summary>
/// SimCLR's view distribution (paper, section 3 and appendix A); the defaults are the seed's CIFAR-10 transform:
/// RandomResizedCrop(32, scale 0.08-1, ratio 3/4-4/3), RandomHorizontalFlip(0.5),
/// RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8), RandomGrayscale(0.2), then Normalize. The paper's ImageNet
/// recipe adds a Gaussian blur (p = 0.5, sigma U[0.1, 2], kernel 10% of the view's side), off by default as in the
/// seed's CIFAR-10 recipe. A probability or strength of 0 switches that operation off.
/// </summary>
public sealed record AugmentationOptions
{
    public int OutputSize { get; init; } = 32;

    public bool Crop { get; init; } = true;

    public double CropScaleMin { get; init; } = 0.08;

    public double CropScaleMax { get; init; } = 1.0;

    public double CropRatioMin { get; init; } = 3.0 / 4.0;

    public double CropRatioMax { get; init; } = 4.0 / 3.0;

    public double FlipProbability { get; init; } = 0.5;

    public double JitterProbability { get; init; } = 0.8;

    public double Brightness { get; init; } = 0.4;

    public double Contrast { get; init; } = 0.4;

    public double Saturation { get; init; } = 0.4;

    public double Hue { get; init; } = 0.1;

    public double GrayscaleProbability { get; init; } = 0.2;

    /// <summary>Chance of a Gaussian blur, after the colour operations (the paper's ImageNet recipe: 0.5).</summary>
    public double BlurProbability { get; init; }

    public double BlurSigmaMin { get; init; } = 0.1;

    public double BlurSigmaMax { get; init; } = 2.0;

    /// <summary>The blur kernel's side as a fraction of outputSize, made odd (at least 3): 0.1 gives 23 at 224, 9 at 96.</summary>
    public double BlurKernelFraction { get; init; } = 0.1;

    /// <summary>The blur kernel's side: BlurKernelFraction x OutputSize, odd, at least 3 and at most the odd side
    /// below OutputSize (reflect padding needs the radius under the side).</summary>
    public int BlurKernelSize
    {
        get
        {
            int k = Math.Max(3, (int)(BlurKernelFraction * OutputSize));
            if (k % 2 == 0) k++;
            int largest = Math.Max(1, OutputSize % 2 == 0 ? OutputSize - 1 : OutputSize - 2);
            return Math.Min(k, largest);
        }
    }

    /// <summary>No randomness at all: the evaluation transform (resize if needed, normalise).</summary>
    public static AugmentationOptions None { get; } = new()
    {
        Crop = false,
        FlipProbability = 0,
        JitterProbability = 0,
        GrayscaleProbability = 0,
    };

    /// <summary>Every impossible value, one message each; empty when the options are usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        void Probability(string name, double p)
        {
            if (!(p >= 0 && p <= 1)) problems.Add($"{name} must be a probability in [0, 1] (got {p})");
        }
        if (OutputSize < 1 || OutputSize > 1024) problems.Add($"outputSize must be in [1, 1024] (got {OutputSize})");
        if (!(CropScaleMin > 0 && CropScaleMin <= CropScaleMax && CropScaleMax <= 1))
            problems.Add($"crop scale must satisfy 0 < min <= max <= 1 (got {CropScaleMin}-{CropScaleMax})");
        if (!(CropRatioMin > 0 && CropRatioMin <= CropRatioMax && !double.IsInfinity(CropRatioMax)))
            problems.Add($"crop ratio must satisfy 0 < min <= max (got {CropRatioMin}-{CropRatioMax})");
        Probability("flipProbability", FlipProbability);
        Probability("jitterProbability", JitterProbability);
        Probability("grayscaleProbability", GrayscaleProbability);
        Probability("blurProbability", BlurProbability);
        if (!(BlurSigmaMin > 0 && BlurSigmaMin <= BlurSigmaMax && BlurSigmaMax <= 100))
            problems.Add($"blur sigma must satisfy 0 < min <= max <= 100 (got {BlurSigmaMin}-{BlurSigmaMax})");
        if (!(BlurKernelFraction > 0 && BlurKernelFraction <= 1)) problems.Add($"blurKernelFraction must be in (0, 1] (got {BlurKernelFraction})");
        if (BlurProbability > 0 && OutputSize < 4) problems.Add($"a blur needs outputSize >= 4 (got {OutputSize})");
        if (!(Brightness >= 0)) problems.Add($"brightness must be >= 0 (got {Brightness})");
        if (!(Contrast >= 0)) problems.Add($"contrast must be >= 0 (got {Contrast})");
        if (!(Saturation >= 0)) problems.Add($"saturation must be >= 0 (got {Saturation})");
        if (!(Hue >= 0 && Hue <= 0.5)) problems.Add($"hue must be in [0, 0.5] (got {Hue})");
        return problems;
    }

    public void Validate()
    {
        var problems = Problems();
        if (problems.Count > 0) throw new ArgumentException("invalid augmentation: " + string.Join("; ", problems));
    }
}
