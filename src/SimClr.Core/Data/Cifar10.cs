using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>CIFAR-10 from its binary distribution under <c>root/cifar-10-batches-bin/</c>, downloaded when absent and allowed.</summary>
public static class Cifar10
{
    public const string FolderName = "cifar-10-batches-bin";
    public const string ArchiveName = "cifar-10-binary.tar.gz";
    public const string ArchiveMd5 = "c32a1d4ab5d03f1284b67883e8d87530";
    public static readonly Uri DefaultSource = new("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    public static readonly string[] TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    public const string TestFile = "test_batch.bin";
    public static readonly string[] ClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>The seed's (and common CIFAR-10 code's) normalisation.</summary>
    public static readonly double[] Mean = [0.4914, 0.4822, 0.4465];
    public static readonly double[] Std = [0.2023, 0.1994, 0.2010];

    public static string Folder(string root) => Path.Combine(root, FolderName);

    public static bool IsPresent(string root) =>
        TrainFiles.Append(TestFile).All(f => File.Exists(Path.Combine(Folder(root), f)));

    /// <summary>Loads train (50,000) and test (10,000). <paramref name="recordsPerFile"/> is 10,000 for the real files.</summary>
    public static TrainTestSplit Load(string root, int recordsPerFile = 10_000)
    {
        if (!IsPresent(root))
        {
            var missing = TrainFiles.Append(TestFile).Where(f => !File.Exists(Path.Combine(Folder(root), f)));
            throw new DataSetException($"CIFAR-10 is not in {Folder(root)} (missing: {string.Join(", ", missing)}). "
                + $"Put the binary version's files there (extract {ArchiveName}), or allow the download.");
        }
        var parts = TrainFiles.Select(f => CifarBinaryReader.Read(Path.Combine(Folder(root), f), 10, recordsPerFile)).ToList();
        var (testImages, testLabels) = CifarBinaryReader.Read(Path.Combine(Folder(root), TestFile), 10, recordsPerFile);
        Tensor trainImages = cat(parts.Select(p => p.Images).ToList(), 0);
        foreach (var part in parts) part.Images.Dispose();
        return new TrainTestSplit(
            new ImageDataSet("cifar10-train", trainImages, parts.SelectMany(p => p.Labels).ToArray(), ClassNames, Mean, Std),
            new ImageDataSet("cifar10-test", testImages, testLabels, ClassNames, Mean, Std));
    }

    /// <summary>Loads, downloading and verifying the archive first when the files are absent and <paramref name="download"/> is set.</summary>
    public static async Task<TrainTestSplit> LoadOrDownloadAsync(string root, bool download, Uri? source = null, string md5 = ArchiveMd5,
        HttpClient? http = null, IProgress<(long Done, long? Total)>? progress = null, int recordsPerFile = 10_000, CancellationToken cancel = default)
    {
        if (!IsPresent(root) && download)
            await ArchiveDownloader.DownloadAndExtractAsync(source ?? DefaultSource, md5, root, ArchiveName, Folder(root), http, progress, cancel);
        return Load(root, recordsPerFile);
    }
}
