namespace SimClr.Core.Data;

/// <summary>Which data set a run uses and where it lives.</summary>
/// <param name="Name">synthetic-shapes (embedded, no files), cifar10, fashion-mnist, stl10, or imagefolder (PNG and JPEG files, <see cref="ImageFolder"/>).</param>
/// <param name="Root">Folder of the files; null for the data set's default (./data for CIFAR-10, Debian's folder for Fashion-MNIST; imagefolder needs one).</param>
/// <param name="Download">Fetch CIFAR-10 when absent (needs network access).</param>
/// <param name="SyntheticTrain">Generated training images (synthetic-shapes only).</param>
/// <param name="SyntheticTest">Generated test images (synthetic-shapes only).</param>
/// <param name="SyntheticSeed">Generator seed (synthetic-shapes only).</param>
/// <param name="ImageSize">imagefolder: the side images are scaled (shorter side) and centre-cropped to.</param>
/// <param name="TestFraction">imagefolder without train/ and test/: the share of each class held out for testing (seeded by SplitSeed).</param>
/// <param name="SplitSeed">imagefolder: the seed of that split.</param>
/// <param name="SkipBadImages">imagefolder: leave unreadable images out (counted) instead of refusing the folder with the list of them.</param>
/// <param name="Unlabeled">stl10: pre-train on the 100,000 unlabelled images as well as the 5,000 labelled ones.</param>
/// <param name="SharedStorage">Workers open the data set themselves (from this root, or their own --data-root on a shared
/// file system) and only indices travel per step, instead of the coordinator sending each shard's pixels.</param>
public sealed record DataOptions(
    string Name = DataOptions.SyntheticShapes,
    string? Root = null,
    bool Download = true,
    int SyntheticTrain = 10_000,
    int SyntheticTest = 2_000,
    ulong SyntheticSeed = 0,
    int ImageSize = 64,
    double TestFraction = 0.1,
    ulong SplitSeed = 0,
    bool SkipBadImages = false,
    bool Unlabeled = true,
    bool SharedStorage = false)
{
    public const string SyntheticShapes = "synthetic-shapes";
    public const string Cifar10 = "cifar10";
    public const string FashionMnist = "fashion-mnist";
    public const string ImageFolder = "imagefolder";
    public const string Stl10 = "stl10";
    public static readonly string[] Names = [SyntheticShapes, Cifar10, FashionMnist, ImageFolder, Stl10];

    /// <summary>Largest imagefolder side (a 1024x1024 RGB image is 3 MB per image in the cache).</summary>
    public const int MaxImageSize = 1024;

    /// <summary>Most images synthetic-shapes generates per split (3,072 bytes each).</summary>
    public const int MaxSyntheticImages = 1_000_000;

    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (!Names.Contains(Name)) problems.Add($"data set '{Name}' is unknown; choose one of {string.Join(", ", Names)}");
        if (SyntheticTrain < 1 || SyntheticTest < 1 || SyntheticTrain > MaxSyntheticImages || SyntheticTest > MaxSyntheticImages)
            problems.Add($"syntheticTrain and syntheticTest must be in [1, {MaxSyntheticImages}] (got {SyntheticTrain}, {SyntheticTest}; {MaxSyntheticImages} images are 3 GB)");
        if (ImageSize < 8 || ImageSize > MaxImageSize) problems.Add($"imageSize must be in [8, {MaxImageSize}] (got {ImageSize})");
        if (!(TestFraction > 0 && TestFraction < 1)) problems.Add($"testFraction must be in (0, 1) (got {TestFraction})");
        if (Name == ImageFolder && string.IsNullOrWhiteSpace(Root)) problems.Add("imagefolder needs root: the folder of images (data.root=...)");
        return problems;
    }

    /// <summary>Loads train and test; every failure is a <see cref="DataSetException"/> saying what to do.</summary>
    public async Task<TrainTestSplit> LoadAsync(IProgress<(long Done, long? Total)>? downloadProgress = null, CancellationToken cancel = default, Action<string>? log = null)
    {
        var problems = Problems();
        if (problems.Count > 0) throw new DataSetException(string.Join("; ", problems));
        return Name switch
        {
            SyntheticShapes => Data.SyntheticShapes.Generate(SyntheticTrain, SyntheticTest, SyntheticSeed),
            Cifar10 => await Data.Cifar10.LoadOrDownloadAsync(Root ?? "data", Download, progress: downloadProgress, cancel: cancel),
            Stl10 => await Data.Stl10.LoadOrDownloadAsync(Root ?? "data", Download, Unlabeled, progress: downloadProgress, cancel: cancel),
            ImageFolder => Data.ImageFolder.Load(Root!, ImageSize, TestFraction, SplitSeed, SkipBadImages, downloadProgress, log, cancel: cancel),
            _ => Data.FashionMnist.Load(Root ?? Data.FashionMnist.DefaultFolder),
        };
    }
}
