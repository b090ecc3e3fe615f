using SimClr.Core.Data;
using SkiaSharp;

namespace SimClr.Core.Tests.Data;

/// <summary>data.name imagefolder on folders the test draws: PNG and JPEG of any size and aspect, the layouts, the
/// cache (built once, rebuilt when the folder changes), and unreadable files refused in one list or skipped.</summary>
public sealed class ImageFolderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("simclr-imagefolder-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A width x height image: the middle third of the width in <paramref name="centre"/>, the rest in <paramref name="edge"/>.</summary>
    internal static void Draw(string path, int width, int height, SKColor centre, SKColor edge)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(edge);
            using var paint = new SKPaint { Color = centre };
            canvas.DrawRect(width / 3f, 0, width / 3f, height, paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        bool jpeg = path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase);
        using var data = image.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 95);
        File.WriteAllBytes(path, data.ToArray());
    }

    private void Classes(string folder, int perClass)
    {
        for (int i = 0; i < perClass; i++)
        {
            Draw(Path.Combine(folder, "cats", $"c{i}.png"), 60, 40, SKColors.Lime, SKColors.Red);   // wide: the crop keeps the green middle
            Draw(Path.Combine(folder, "dogs", $"d{i}.jpg"), 30, 50 + 3 * i, SKColors.Blue, SKColors.Blue); // tall, sizes vary
        }
    }

    [Fact]
    public void Class_subfolders_are_decoded_centre_cropped_split_per_class_and_cached()
    {
        Classes(_root, 10);
        var log = new List<string>();
        using (var data = ImageFolder.Load(_root, 16, 0.2, 7, skipBadImages: false, log: log.Add))
        {
            Assert.Equal(["cats", "dogs"], data.Train.ClassNames);
            Assert.Equal(16, data.Train.Count);
            Assert.Equal(4, data.Test.Count);
            Assert.Equal(2, data.Test.Labels.Count(l => l == 0)); // 20% of each class
            Assert.Equal(new long[] { 16, 3, 16, 16 }, data.Train.Images.shape);
            // a cat: the middle third of a wide image is green, and the centre crop is mostly it
            int cat = Array.IndexOf(data.Train.Labels, 0);
            using var image = data.Train.Images[cat].to(TorchSharp.torch.ScalarType.Float32);
            // cropped, the green third of a 3:2 image is half the square (squashed, it would be a third)
            int green = Enumerable.Range(0, 16).Count(x => image[1, 8, x].item<float>() > 128);
            Assert.InRange(green, 7, 9);
            Assert.True(image[0, 8, 8].item<float>() < 60 && image[0, 8, 0].item<float>() > 200, "red edges, green centre");
            int dog = Array.IndexOf(data.Train.Labels, 1);
            Assert.True(data.Train.Images[dog][2].to(TorchSharp.torch.ScalarType.Float32).mean().item<float>() > 200, "a dog is blue (JPEG)");
            Assert.InRange(data.Train.Mean[2], 0.3, 0.8);
        }
        Assert.Single(log, l => l.Contains("decoding 20 images", StringComparison.Ordinal));
        string cache = Path.Combine(_root, ImageFolder.CacheFileName(16));
        DateTime built = File.GetLastWriteTimeUtc(cache);

        ImageFolder.Load(_root, 16, 0.2, 7, false, log: log.Add).Dispose();
        Assert.Single(log, l => l.Contains("decoding", StringComparison.Ordinal)); // read from the cache
        Assert.Equal(built, File.GetLastWriteTimeUtc(cache));

        Draw(Path.Combine(_root, "dogs", "new.png"), 20, 20, SKColors.Blue, SKColors.Blue);
        using (var grown = ImageFolder.Load(_root, 16, 0.2, 7, false, log: log.Add))
            Assert.Equal(21, grown.Train.Count + grown.Test.Count);
        Assert.Contains(log, l => l.Contains("decoding 21 images", StringComparison.Ordinal) && l.Contains("changed", StringComparison.Ordinal));
    }

    [Fact]
    public void Train_and_test_subfolders_are_the_split_and_a_flat_folder_is_one_unlabelled_class()
    {
        Classes(Path.Combine(_root, "split", "train"), 3);
        Classes(Path.Combine(_root, "split", "test"), 2);
        using (var data = ImageFolder.Load(Path.Combine(_root, "split"), 8, 0.5, 0, false))
        {
            Assert.Equal(6, data.Train.Count);
            Assert.Equal(4, data.Test.Count);
        }
        for (int i = 0; i < 10; i++) Draw(Path.Combine(_root, "flat", $"{i}.png"), 12, 12, SKColors.White, SKColors.Black);
        using var flat = ImageFolder.Load(Path.Combine(_root, "flat"), 8, 0.3, 0, false);
        Assert.Equal([ImageFolder.UnlabelledClass], flat.Train.ClassNames);
        Assert.Equal(7, flat.Train.Count);
        Assert.Equal(3, flat.Test.Count);
    }

    [Fact]
    public void Unreadable_images_are_listed_in_one_error_or_left_out_and_counted()
    {
        Classes(_root, 4);
        File.WriteAllBytes(Path.Combine(_root, "cats", "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        byte[] jpeg = File.ReadAllBytes(Path.Combine(_root, "dogs", "d0.jpg"));
        File.WriteAllBytes(Path.Combine(_root, "dogs", "cut.jpg"), jpeg[..20]);
        File.WriteAllText(Path.Combine(_root, "dogs", "notes.txt"), "not an image, not read");
        var e = Assert.Throws<DataSetException>(() => ImageFolder.Load(_root, 8, 0.25, 0, false));
        Assert.Contains("2 of 10 images", e.Message);
        Assert.Contains(Path.Combine("cats", "broken.png"), e.Message);
        Assert.Contains(Path.Combine("dogs", "cut.jpg"), e.Message);
        Assert.Contains("data.skipBadImages=true", e.Message);
        Assert.Empty(Directory.GetFiles(_root, "*.cache*", SearchOption.AllDirectories).Concat(Directory.GetFiles(_root, ".*tmp")));

        var log = new List<string>();
        using var data = ImageFolder.Load(_root, 8, 0.25, 0, true, log: log.Add);
        Assert.Equal(8, data.Train.Count + data.Test.Count);
        Assert.Contains(log, l => l.Contains("left out 2 unreadable", StringComparison.Ordinal));
        Assert.Equal(2, ImageFolder.TryReadHeader(Path.Combine(_root, ImageFolder.CacheFileName(8)), out _)!.Skipped);
    }

    [Fact]
    public void A_missing_or_empty_folder_and_a_damaged_cache_say_what_to_do()
    {
        Assert.Contains("does not exist", Assert.Throws<DataSetException>(() => ImageFolder.Load(Path.Combine(_root, "nope"), 8, 0.1, 0, false)).Message);
        Directory.CreateDirectory(Path.Combine(_root, "empty", "cats"));
        Assert.Contains("holds no PNG or JPEG files", Assert.Throws<DataSetException>(() => ImageFolder.Load(Path.Combine(_root, "empty"), 8, 0.1, 0, false)).Message);

        Classes(Path.Combine(_root, "ok"), 3);
        ImageFolder.Load(Path.Combine(_root, "ok"), 8, 0.34, 0, false).Dispose();
        string cache = Path.Combine(_root, "ok", ImageFolder.CacheFileName(8));
        using (var stream = new FileStream(cache, FileMode.Open)) stream.SetLength(stream.Length - 10); // cut short
        using var rebuilt = ImageFolder.Load(Path.Combine(_root, "ok"), 8, 0.34, 0, false);
        Assert.Equal(6, rebuilt.Train.Count + rebuilt.Test.Count);
        Assert.NotNull(ImageFolder.TryReadHeader(cache, out _));
    }
}
