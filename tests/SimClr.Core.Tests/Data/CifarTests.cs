using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using SimClr.Core.Data;

namespace SimClr.Core.Tests.Data;

public sealed class CifarTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("simclr-cifar-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Pixels whose value encodes (record, channel, position), so any reordering shows.</summary>
    private static byte[] PatternPixels(int records)
    {
        var pixels = new byte[records * CifarBinaryReader.PixelBytes];
        for (int r = 0; r < records; r++)
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    pixels[r * 3072 + c * 1024 + k] = (byte)(r * 7 + c * 50 + k * 3);
        return pixels;
    }

    private void WriteDistribution(string root, int records)
    {
        Directory.CreateDirectory(Cifar10.Folder(root));
        foreach (var (file, n) in Cifar10.TrainFiles.Select((f, i) => (f, i)).Append((Cifar10.TestFile, 9)))
            CifarBinaryReader.Write(Path.Combine(Cifar10.Folder(root), file), PatternPixels(records), Enumerable.Range(0, records).Select(r => (r + n) % 10).ToArray());
    }

    [Fact]
    public void A_written_file_round_trips_pixels_and_labels_exactly_with_red_green_blue_planes_in_order()
    {
        string path = Path.Combine(_root, "batch.bin");
        var pixels = PatternPixels(3);
        CifarBinaryReader.Write(path, pixels, [3, 0, 9]);
        var (images, labels) = CifarBinaryReader.Read(path);
        using (images)
        {
            Assert.Equal([3, 0, 9], labels);
            Assert.Equal(new long[] { 3, 3, 32, 32 }, images.shape);
            Assert.Equal(pixels, images.data<byte>().ToArray());
            // record 1, green plane, row 2, column 5 -> byte 1*3072 + 1024 + 2*32 + 5 of the pixel data
            Assert.Equal(unchecked((byte)(7 + 50 + (2 * 32 + 5) * 3)), images[1, 1, 2, 5].item<byte>());
            Assert.Equal((byte)(14 + 100), images[2, 2, 0, 0].item<byte>()); // blue plane of record 2 starts at 0
        }
        // and the bytes on disk are label, R plane, G plane, B plane
        byte[] raw = File.ReadAllBytes(path);
        Assert.Equal(3, raw[0]);
        Assert.Equal(pixels[1024], raw[1 + 1024]);
        Assert.Equal(0, raw[CifarBinaryReader.RecordBytes]);
    }

    [Fact]
    public void Missing_file_is_named()
    {
        string path = Path.Combine(_root, "nope.bin");
        Assert.Equal($"{path}: file is missing", Assert.Throws<DataSetException>(() => CifarBinaryReader.Read(path)).Message);
    }

    [Fact]
    public void Truncated_file_names_the_byte_and_the_incomplete_record()
    {
        string path = Path.Combine(_root, "batch.bin");
        CifarBinaryReader.Write(path, PatternPixels(2), [1, 2]);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..5000]);
        var e = Assert.Throws<DataSetException>(() => CifarBinaryReader.Read(path));
        Assert.Contains("truncated at byte 5000", e.Message);
        Assert.Contains("record 1 is incomplete", e.Message);
    }

    [Fact]
    public void A_file_cut_at_a_record_boundary_is_caught_by_the_expected_record_count()
    {
        string path = Path.Combine(_root, "batch.bin");
        CifarBinaryReader.Write(path, PatternPixels(2), [1, 2]);
        var e = Assert.Throws<DataSetException>(() => CifarBinaryReader.Read(path, expectedRecords: 10_000));
        Assert.Contains($"truncated at byte {2 * 3073}: expected 10000 records", e.Message);
    }

    [Fact]
    public void Empty_file_and_label_out_of_range_are_named()
    {
        string empty = Path.Combine(_root, "empty.bin");
        File.WriteAllBytes(empty, []);
        Assert.Contains("file is empty", Assert.Throws<DataSetException>(() => CifarBinaryReader.Read(empty)).Message);

        string path = Path.Combine(_root, "batch.bin");
        CifarBinaryReader.Write(path, PatternPixels(3), [1, 2, 3]);
        byte[] raw = File.ReadAllBytes(path);
        raw[2 * CifarBinaryReader.RecordBytes] = 12;
        File.WriteAllBytes(path, raw);
        var e = Assert.Throws<DataSetException>(() => CifarBinaryReader.Read(path));
        Assert.Equal($"{path}: label 12 out of range 0..9 in record 2 (byte 6146)", e.Message);
    }

    [Fact]
    public void The_distribution_loads_as_train_and_test_with_the_seeds_normalisation()
    {
        WriteDistribution(_root, records: 4);
        using var split = Cifar10.Load(_root, recordsPerFile: 4);
        Assert.Equal(20, split.Train.Count);
        Assert.Equal(4, split.Test.Count);
        Assert.Equal([0, 1, 2, 3, 1, 2, 3, 4], split.Train.Labels[..8]);
        Assert.Equal(new[] { 0.4914, 0.4822, 0.4465 }, split.Train.Mean);
        Assert.Equal(new[] { 0.2023, 0.1994, 0.2010 }, split.Test.Std);
        Assert.Equal("airplane", split.Train.ClassNames[0]);
    }

    [Fact]
    public void Absent_files_without_download_say_where_to_put_them()
    {
        var e = Assert.Throws<DataSetException>(() => Cifar10.Load(_root));
        Assert.Contains(Cifar10.Folder(_root), e.Message);
        Assert.Contains("data_batch_1.bin", e.Message);
        Assert.Contains("cifar-10-binary.tar.gz", e.Message);
    }

    private string MakeArchive(int records)
    {
        string staging = Path.Combine(_root, "staging");
        WriteDistribution(staging, records);
        string archive = Path.Combine(_root, "served.tar.gz");
        using (var gzip = new GZipStream(File.Create(archive), CompressionLevel.Fastest))
            TarFile.CreateFromDirectory(Cifar10.Folder(staging), gzip, includeBaseDirectory: true);
        Directory.Delete(staging, recursive: true);
        return archive;
    }

    [Fact]
    public async Task Download_verifies_the_md5_extracts_and_loads()
    {
        string archive = MakeArchive(records: 3);
        string md5 = ArchiveDownloader.Md5Of(archive);
        string target = Path.Combine(_root, "data");
        var reports = new List<long>();
        var split = await LoopbackHttp.Serving(archive, uri => Cifar10.LoadOrDownloadAsync(target, download: true, uri, md5,
            progress: new SynchronousProgress(p => reports.Add(p.Done)), recordsPerFile: 3));
        using (split)
        {
            Assert.Equal(15, split.Train.Count);
            Assert.Equal(3, split.Test.Count);
        }
        Assert.Equal(new FileInfo(archive).Length, reports.Last());
        Assert.False(File.Exists(Path.Combine(target, Cifar10.ArchiveName + ".partial")));
        Assert.Equal(md5, ArchiveDownloader.Md5Of(Path.Combine(target, Cifar10.ArchiveName)));
    }

    [Fact]
    public async Task A_download_with_the_wrong_md5_is_discarded_and_says_so()
    {
        string archive = MakeArchive(records: 2);
        string target = Path.Combine(_root, "data");
        var e = await LoopbackHttp.Serving(archive, uri => Assert.ThrowsAsync<DataSetException>(() =>
            Cifar10.LoadOrDownloadAsync(target, download: true, uri, md5: Cifar10.ArchiveMd5)));
        Assert.Contains($"does not match the expected {Cifar10.ArchiveMd5}", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(target));
    }

    [Fact]
    public async Task Without_network_the_error_says_where_to_put_the_files()
    {
        string target = Path.Combine(_root, "data");
        var unreachable = new Uri($"http://127.0.0.1:{LoopbackHttp.FreePort()}/cifar-10-binary.tar.gz"); // nothing listens there
        var e = await Assert.ThrowsAsync<DataSetException>(() => Cifar10.LoadOrDownloadAsync(target, download: true, unreachable));
        Assert.Contains("Could not download", e.Message);
        Assert.Contains(Cifar10.Folder(target), e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(target));
    }

    [Fact]
    public void A_corrupt_archive_is_named()
    {
        string archive = Path.Combine(_root, "bad.tar.gz");
        File.WriteAllBytes(archive, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]);
        var e = Assert.Throws<DataSetException>(() => ArchiveDownloader.ExtractTarGz(archive, Path.Combine(_root, "x")));
        Assert.Contains("not a valid .tar.gz", e.Message);
    }

    private sealed class SynchronousProgress(Action<(long Done, long? Total)> report) : IProgress<(long Done, long? Total)>
    {
        public void Report((long Done, long? Total) value) => report(value);
    }
}
