using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>
/// STL-10 (96x96 RGB, 10 classes: 5,000 labelled training images, 8,000 test images, 100,000 unlabelled) from its
/// binary distribution under <c>root/stl10_binary/</c>, downloaded and MD5-checked when absent and allowed. The files
/// hold each image's three planes column-major; they are transposed to rows on reading. For pre-training, the
/// unlabelled images and the labelled training images are one block (<see cref="TrainTestSplit.Pretrain"/>, the
/// paper's "train+unlabeled"): the labelled ones stay the kNN monitor's bank.
/// </summary>
public static class Stl10
{
    public const string FolderName = "stl10_binary";
    public const string ArchiveName = "stl10_binary.tar.gz";
    public const string ArchiveMd5 = "91f7769df0f17e558f3565bffb0c7dfb";
    public static readonly Uri DefaultSource = new("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz");
    public const int Side = 96;
    public const int ImageBytes = 3 * Side * Side;
    public static readonly string[] ClassNames = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"];

    /// <summary>Per-channel mean and std of the 105,000 training images (as common STL-10 code uses them).</summary>
    public static readonly double[] Mean = [0.4467, 0.4398, 0.4066];
    public static readonly double[] Std = [0.2603, 0.2566, 0.2713];

    public static readonly string[] RequiredFiles = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"];
    public const string UnlabeledFile = "unlabeled_X.bin";

    public static string Folder(string root) => Path.Combine(root, FolderName);

    public static bool IsPresent(string root, bool unlabeled) =>
        RequiredFiles.Concat(unlabeled ? [UnlabeledFile] : []).All(f => File.Exists(Path.Combine(Folder(root), f)));

    public static async Task<TrainTestSplit> LoadOrDownloadAsync(string root, bool download, bool unlabeled, Uri? source = null, string md5 = ArchiveMd5,
        HttpClient? http = null, IProgress<(long Done, long? Total)>? progress = null, CancellationToken cancel = default)
    {
        if (!IsPresent(root, unlabeled) && download)
            await ArchiveDownloader.DownloadAndExtractAsync(source ?? DefaultSource, md5, root, ArchiveName, Folder(root), http, progress, cancel);
        return Load(root, unlabeled);
    }

    /// <summary>Train, test and (with <paramref name="unlabeled"/>) the pre-training block of train + unlabelled.</summary>
    public static TrainTestSplit Load(string root, bool unlabeled)
    {
        string folder = Folder(root);
        var missing = RequiredFiles.Concat(unlabeled ? [UnlabeledFile] : []).Where(f => !File.Exists(Path.Combine(folder, f))).ToList();
        if (missing.Count > 0)
            throw new DataSetException($"STL-10 is not in {folder} (missing: {string.Join(", ", missing)}). Put the binary version's files there "
                + $"(extract {ArchiveName}), or allow the download (data.download)" + (unlabeled ? "; data.unlabeled=false does without unlabeled_X.bin" : "") + ".");
        int trainCount = Count(Path.Combine(folder, "train_X.bin"));
        int unlabeledCount = unlabeled ? Count(Path.Combine(folder, UnlabeledFile)) : 0;
        // train first, then the unlabelled images, in one block: the labelled training set is a view of its start
        var block = empty([trainCount + unlabeledCount, 3, Side, Side], ScalarType.Byte);
        try
        {
            ReadImages(Path.Combine(folder, "train_X.bin"), block, 0);
            if (unlabeled) ReadImages(Path.Combine(folder, UnlabeledFile), block, trainCount);
            var trainLabels = ReadLabels(Path.Combine(folder, "train_y.bin"), trainCount);
            int testCount = Count(Path.Combine(folder, "test_X.bin"));
            var testImages = empty([testCount, 3, Side, Side], ScalarType.Byte);
            ReadImages(Path.Combine(folder, "test_X.bin"), testImages, 0);
            var testLabels = ReadLabels(Path.Combine(folder, "test_y.bin"), testCount);
            var train = new ImageDataSet("stl10-train", block.narrow(0, 0, trainCount), trainLabels, ClassNames, Mean, Std);
            var test = new ImageDataSet("stl10-test", testImages, testLabels, ClassNames, Mean, Std);
            // the unlabelled images carry label 0 only to fit the type: pre-training reads no labels, the kNN bank is train
            var pretrain = unlabeled
                ? new ImageDataSet("stl10-train+unlabeled", block.alias(), new int[trainCount + unlabeledCount], ClassNames, Mean, Std)
                : null;
            return new TrainTestSplit(train, test, pretrain);
        }
        finally
        {
            block.Dispose(); // the data sets hold views of it
        }
    }

    private static int Count(string path)
    {
        long length = new FileInfo(path).Length;
        if (length == 0 || length % ImageBytes != 0)
            throw new DataSetException($"{path}: {length} bytes is not a whole number of 96x96 RGB images ({ImageBytes} bytes each); the file is cut short or not STL-10's");
        return checked((int)(length / ImageBytes));
    }

    /// <summary>Reads the images of <paramref name="path"/> into <paramref name="into"/> from row <paramref name="at"/>, a
    /// thousand at a time, each plane transposed from the file's column-major order.</summary>
    private static void ReadImages(string path, Tensor into, long at)
    {
        const int chunk = 1000;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var buffer = new byte[chunk * ImageBytes];
        long count = stream.Length / ImageBytes;
        for (long done = 0; done < count; done += chunk)
        {
            int n = (int)Math.Min(chunk, count - done);
            stream.ReadExactly(buffer, 0, n * ImageBytes);
            using var scope = NewDisposeScope();
            var part = tensor(buffer.AsSpan(0, n * ImageBytes).ToArray(), [n, 3, Side, Side]).transpose(2, 3);
            into.narrow(0, at + done, n).copy_(part);
        }
    }

    private static int[] ReadLabels(string path, int count)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != count) throw new DataSetException($"{path}: {bytes.Length} labels for {count} images");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            if (bytes[i] is < 1 or > 10) throw new DataSetException($"{path}: label {bytes[i]} at byte {i} is outside 1..10");
            labels[i] = bytes[i] - 1;
        }
        return labels;
    }
}
