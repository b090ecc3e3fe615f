namespace SimClr.Core.Data;

/// <summary>Which data set a run uses and where it lives.</summary>
/// <param name="Name">synthetic-shapes (embedded, no files), cifar10, or fashion-mnist.</param>
/// <param name="Root">Folder of the files; null for the data set's default (./data for CIFAR-10, Debian's folder for Fashion-MNIST).</param>
/// <param name="Download">Fetch CIFAR-10 when absent (needs network access).</param>
/// <param name="SyntheticTrain">Generated training images (synthetic-shapes only).</param>
/// <param name="SyntheticTest">Generated test images (synthetic-shapes only).</param>
/// <param name="SyntheticSeed">Generator seed (synthetic-shapes only).</param>
public sealed record DataOptions(
    string Name = DataOptions.SyntheticShapes,
    string? Root = null,
    bool Download = true,
    int SyntheticTrain = 10_000,
    int SyntheticTest = 2_000,
    ulong SyntheticSeed = 0)
{
    public const string SyntheticShapes = "synthetic-shapes";
    public const string Cifar10 = "cifar10";
    public const string FashionMnist = "fashion-mnist";
    public static readonly string[] Names = [SyntheticShapes, Cifar10, FashionMnist];

    /// <summary>Most images synthetic-shapes generates per split (3,072 bytes each).</summary>
    public const int MaxSyntheticImages = 1_000_000;

    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (!Names.Contains(Name)) problems.Add($"data set '{Name}' is unknown; choose one of {string.Join(", ", Names)}");
        if (SyntheticTrain < 1 || SyntheticTest < 1 || SyntheticTrain > MaxSyntheticImages || SyntheticTest > MaxSyntheticImages)
            problems.Add($"syntheticTrain and syntheticTest must be in [1, {MaxSyntheticImages}] (got {SyntheticTrain}, {SyntheticTest}; {MaxSyntheticImages} images are 3 GB)");
        return problems;
    }

    /// <summary>Loads train and test; every failure is a <see cref="DataSetException"/> saying what to do.</summary>
    public async Task<TrainTestSplit> LoadAsync(IProgress<(long Done, long? Total)>? downloadProgress = null, CancellationToken cancel = default)
    {
        var problems = Problems();
        if (problems.Count > 0) throw new DataSetException(string.Join("; ", problems));
        return Name switch
        {
            SyntheticShapes => Data.SyntheticShapes.Generate(SyntheticTrain, SyntheticTest, SyntheticSeed),
            Cifar10 => await Data.Cifar10.LoadOrDownloadAsync(Root ?? "data", Download, progress: downloadProgress, cancel: cancel),
            _ => Data.FashionMnist.Load(Root ?? Data.FashionMnist.DefaultFolder),
        };
    }
}
