using SimClr.Core.Data;

namespace SimClr.Core.Tests.Data;

public sealed class IdxAndFashionMnistTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("simclr-idx-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void WriteFashion(bool gzip, int train = 6, int test = 4)
    {
        string suffix = gzip ? ".gz" : "";
        foreach (var (prefix, n) in new[] { ("train", train), ("t10k", test) })
        {
            var pixels = Enumerable.Range(0, n * 28 * 28).Select(i => (byte)(i % 251)).ToArray();
            IdxReader.Write(Path.Combine(_root, $"{prefix}-images-idx3-ubyte{suffix}"), [n, 28, 28], pixels, gzip);
            IdxReader.Write(Path.Combine(_root, $"{prefix}-labels-idx1-ubyte{suffix}"), [n], Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray(), gzip);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Fashion_mnist_loads_from_plain_or_gzip_idx_as_one_channel_images(bool gzip)
    {
        WriteFashion(gzip);
        using var split = FashionMnist.Load(_root);
        Assert.Equal(new long[] { 6, 1, 28, 28 }, split.Train.Images.shape);
        Assert.Equal(4, split.Test.Count);
        Assert.Equal(1, split.Train.Channels);
        Assert.Equal([0, 1, 2, 3, 4, 5], split.Train.Labels);
        Assert.Equal((byte)(30 % 251), split.Train.Images[0, 0, 1, 2].item<byte>());
        Assert.Equal("/usr/share/datasets/fashion-mnist", FashionMnist.DefaultFolder);
    }

    [Fact]
    public void Bad_magic_number_is_named()
    {
        WriteFashion(gzip: false);
        string labels = Path.Combine(_root, "train-labels-idx1-ubyte");
        byte[] raw = File.ReadAllBytes(labels);
        raw[3] = 3; // claims three dimensions
        File.WriteAllBytes(labels, raw);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_root));
        Assert.Equal($"{labels}: bad magic number 0x00000803, expected 0x00000801 (uint8 IDX with 1 dimensions)", e.Message);
    }

    [Fact]
    public void Truncated_images_name_the_byte()
    {
        WriteFashion(gzip: false);
        string images = Path.Combine(_root, "t10k-images-idx3-ubyte");
        File.WriteAllBytes(images, File.ReadAllBytes(images)[..1000]);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_root));
        Assert.Contains($"{images}: truncated at byte 1000", e.Message);
    }

    [Fact]
    public void Label_out_of_range_and_count_mismatch_are_named()
    {
        WriteFashion(gzip: false);
        string labels = Path.Combine(_root, "train-labels-idx1-ubyte");
        IdxReader.Write(labels, [6], [0, 1, 2, 10, 4, 5], gzip: false);
        Assert.Contains("label 10 out of range 0..9 at item 3", Assert.Throws<DataSetException>(() => FashionMnist.Load(_root)).Message);
        IdxReader.Write(labels, [5], [0, 1, 2, 3, 4], gzip: false);
        Assert.Contains("5 labels for 6 images", Assert.Throws<DataSetException>(() => FashionMnist.Load(_root)).Message);
    }

    [Fact]
    public void A_file_that_links_to_dev_zero_is_refused_without_reading_it_all()
    {
        WriteFashion(gzip: false);
        string images = Path.Combine(_root, "train-images-idx3-ubyte");
        File.Delete(images);
        File.CreateSymbolicLink(images, "/dev/zero");
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(_root));
        Assert.Equal($"{images}: more than 128 MiB, larger than any IDX file of the data sets this reads (Fashion-MNIST's largest is 45 MiB); "
            + "is it a device, a link to one, or another file?", e.Message);
    }

    [Fact]
    public void Corrupt_gzip_and_a_missing_folder_are_named()
    {
        WriteFashion(gzip: true);
        string images = Path.Combine(_root, "train-images-idx3-ubyte.gz");
        byte[] raw = File.ReadAllBytes(images);
        File.WriteAllBytes(images, raw[..(raw.Length / 2)]);
        Assert.StartsWith(images, Assert.Throws<DataSetException>(() => FashionMnist.Load(_root)).Message);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(Path.Combine(_root, "absent")));
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }
}
