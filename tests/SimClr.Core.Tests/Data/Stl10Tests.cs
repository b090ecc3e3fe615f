using System.Formats.Tar;
using System.IO.Compression;
using SimClr.Core.Data;

namespace SimClr.Core.Tests.Data;

/// <summary>STL-10's binary distribution on generated files: planes stored column-major, labels 1..10, the
/// unlabelled images joined to the labelled ones for pre-training, broken files named, and the download.</summary>
public sealed class Stl10Tests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("simclr-stl10-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Image k's pixel at (channel c, row r, column col) is (k + 3c + 5r + 7col) mod 256, written as STL-10 does:
    /// each plane column by column.</summary>
    private static byte Pixel(int k, int c, int r, int col) => (byte)((k + 3 * c + 5 * r + 7 * col) % 256);

    private static void WriteImages(string path, int count, int first)
    {
        var bytes = new byte[count * Stl10.ImageBytes];
        int i = 0;
        for (int k = 0; k < count; k++)
            for (int c = 0; c < 3; c++)
                for (int col = 0; col < Stl10.Side; col++)
                    for (int r = 0; r < Stl10.Side; r++)
                        bytes[i++] = Pixel(first + k, c, r, col);
        File.WriteAllBytes(path, bytes);
    }

    private static void WriteDistribution(string root, int train = 20, int test = 10, int unlabeled = 30)
    {
        string folder = Stl10.Folder(root);
        Directory.CreateDirectory(folder);
        WriteImages(Path.Combine(folder, "train_X.bin"), train, 0);
        File.WriteAllBytes(Path.Combine(folder, "train_y.bin"), [.. Enumerable.Range(0, train).Select(i => (byte)(i % 10 + 1))]);
        WriteImages(Path.Combine(folder, "test_X.bin"), test, 1000);
        File.WriteAllBytes(Path.Combine(folder, "test_y.bin"), [.. Enumerable.Range(0, test).Select(i => (byte)(9 - i % 10 + 1))]);
        if (unlabeled > 0) WriteImages(Path.Combine(folder, "unlabeled_X.bin"), unlabeled, 2000);
    }

    [Fact]
    public void Images_are_read_row_major_with_labels_from_0_and_the_unlabelled_ones_join_pre_training()
    {
        WriteDistribution(_root);
        using var split = Stl10.Load(_root, unlabeled: true);
        Assert.Equal(20, split.Train.Count);
        Assert.Equal(10, split.Test.Count);
        Assert.Equal(50, split.Pretrain.Count);
        Assert.Equal(new long[] { 20, 3, 96, 96 }, split.Train.Images.shape);
        foreach (var (k, c, r, col) in new[] { (0, 0, 0, 1), (3, 2, 10, 40), (19, 1, 95, 0) })
            Assert.Equal(Pixel(k, c, r, col), split.Train.Images[k, c, r, col].item<byte>());
        Assert.Equal(Pixel(1007, 1, 2, 3), split.Test.Images[7, 1, 2, 3].item<byte>());
        Assert.Equal(Pixel(2004, 0, 50, 60), split.Pretrain.Images[24, 0, 50, 60].item<byte>()); // unlabelled image 4 follows the 20 labelled
        Assert.True(split.Pretrain.Images.narrow(0, 0, 20).equal(split.Train.Images).all().item<bool>());
        Assert.Equal([0, 1, 2], split.Train.Labels[..3]);
        Assert.Equal(9, split.Test.Labels[0]);
        Assert.Equal("airplane", split.Train.ClassNames[0]);

        using var labelledOnly = Stl10.Load(_root, unlabeled: false);
        Assert.Same(labelledOnly.Train, labelledOnly.Pretrain);
    }

    /// <summary>Pre-training takes the 50 images (labelled and not), 3 steps of 16 an epoch; the kNN monitor votes
    /// among the 20 labelled ones only; fine-tuning takes the labelled ones.</summary>
    [Fact]
    public async Task Pretraining_takes_the_unlabelled_images_and_the_knn_bank_is_the_labelled_ones()
    {
        WriteDistribution(_root);
        var messages = new List<string>();
        var observer = new Recorder(messages);
        var config = SimClr.Core.Tests.Stages.TinyRuns.Config(SimClr.Core.Config.Stage.Pretrain, Path.Combine(_root, "runs"), "pre") with
        {
            Data = new DataOptions(DataOptions.Stl10, _root, Download: false),
            Epochs = 1,
        };
        var result = await SimClr.Core.Stages.StageRunner.RunAsync(config, SimClr.Core.Stages.RunDirectory.Create(config), observer);
        Assert.Equal(Path.Combine(_root, "runs", "pre", "checkpoints", "step-00000003.safetensors"), result.CheckpointPath);
        Assert.Contains(messages, m => m.Contains("pre-training on 50 images (20 labelled, 30 unlabelled)", StringComparison.Ordinal));
        Assert.InRange(result.Metrics["knn_accuracy"], 0, 1);
        var fine = SimClr.Core.Tests.Stages.TinyRuns.Config(SimClr.Core.Config.Stage.Supervised, Path.Combine(_root, "runs"), "sup") with
        {
            Data = new DataOptions(DataOptions.Stl10, _root, Download: false),
            Epochs = 1,
        };
        var supervised = await SimClr.Core.Stages.StageRunner.RunAsync(fine, SimClr.Core.Stages.RunDirectory.Create(fine), observer);
        Assert.Contains(messages, m => m.Contains("stl10-train (20 train, 10 test, 3x96x96)", StringComparison.Ordinal));
        Assert.InRange(supervised.Metrics["test_accuracy"], 0, 1);
    }

    private sealed class Recorder(List<string> messages) : SimClr.Core.Stages.ITrainingObserver
    {
        public void Started(string what, long firstStep, long totalSteps) { }

        public void Step(SimClr.Core.Stages.StepReport report) { }

        public void Message(string text) => messages.Add(text);

        public void Finished() { }
    }

    [Fact]
    public void Missing_cut_short_or_mislabelled_files_are_named()
    {
        var e = Assert.Throws<DataSetException>(() => Stl10.Load(_root, unlabeled: true));
        Assert.Contains("unlabeled_X.bin", e.Message);
        Assert.Contains("data.unlabeled=false", e.Message);
        Assert.Contains(Stl10.ArchiveName, e.Message);

        WriteDistribution(_root, unlabeled: 0);
        string trainX = Path.Combine(Stl10.Folder(_root), "train_X.bin");
        File.WriteAllBytes(trainX, File.ReadAllBytes(trainX)[..^100]);
        Assert.Contains("not a whole number of 96x96 RGB images", Assert.Throws<DataSetException>(() => Stl10.Load(_root, unlabeled: false)).Message);

        WriteDistribution(_root, unlabeled: 0);
        File.WriteAllBytes(Path.Combine(Stl10.Folder(_root), "test_y.bin"), [1, 2, 3, 0, 5, 6, 7, 8, 9, 10]);
        Assert.Contains("label 0 at byte 3 is outside 1..10", Assert.Throws<DataSetException>(() => Stl10.Load(_root, unlabeled: false)).Message);
    }

    [Fact]
    public async Task Download_verifies_the_md5_extracts_and_loads()
    {
        string staging = Path.Combine(_root, "staging");
        WriteDistribution(staging, train: 10, test: 10, unlabeled: 5);
        string archive = Path.Combine(_root, "served.tar.gz");
        using (var gzip = new GZipStream(File.Create(archive), CompressionLevel.Fastest))
            TarFile.CreateFromDirectory(Stl10.Folder(staging), gzip, includeBaseDirectory: true);
        string target = Path.Combine(_root, "data");
        var split = await LoopbackHttp.Serving(archive, uri => Stl10.LoadOrDownloadAsync(target, download: true, unlabeled: true, uri, ArchiveDownloader.Md5Of(archive)));
        using (split)
        {
            Assert.Equal(15, split.Pretrain.Count);
            Assert.Equal(10, split.Test.Count);
        }
        Assert.Equal(ArchiveDownloader.Md5Of(archive), ArchiveDownloader.Md5Of(Path.Combine(target, Stl10.ArchiveName)));
    }
}
