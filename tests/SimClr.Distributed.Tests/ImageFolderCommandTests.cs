using SkiaSharp;

namespace SimClr.Distributed.Tests;

/// <summary>`simclr pretrain --set data.name=imagefolder --set data.root=...` on a folder of generated PNG and JPEG
/// files, with a corrupt file refused by name (exit code 2) or, with data.skipBadImages, left out.</summary>
public sealed class ImageFolderCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-imagefolder-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A grey image with one coloured circle placed by <paramref name="seed"/>, as PNG or (".jpg") JPEG.</summary>
    internal static void Draw(string path, int width, int height, SKColor color, int seed)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var random = new Random(seed);
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.Gray);
            using var paint = new SKPaint { Color = color };
            canvas.DrawCircle(random.Next(width), random.Next(height), 4 + random.Next(Math.Min(width, height) / 2), paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(path.EndsWith(".jpg", StringComparison.Ordinal) ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 90);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void Pretraining_on_a_folder_of_png_and_jpeg_files_with_a_corrupt_one()
    {
        string data = Path.Combine(_folder, "images");
        for (int i = 0; i < 24; i++)
        {
            Draw(Path.Combine(data, "red", $"{i}.png"), 40 + i, 36, SKColors.Red, i);
            Draw(Path.Combine(data, "blue", $"{i}.jpg"), 36, 40 + i, SKColors.Blue, 100 + i);
        }
        File.WriteAllBytes(Path.Combine(data, "blue", "corrupt.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3]);
        string[] run = ["pretrain", "--plain", "--set", "data.name=imagefolder", "--set", $"data.root={data}", "--set", "data.imageSize=32",
            "--set", "model.width=0.125", "--set", "model.projectionHidden=16", "--set", "model.projectionDim=8", "--set", "batchSize=16",
            "--set", "epochs=1", "--set", "threads=1", "--set", "knnEveryEpochs=1", "--set", "knnK=5", "--set", $"runsFolder={Path.Combine(_folder, "runs")}"];

        var (code, output) = SimclrProcess.Run([.. run, "--set", "runName=refused"]);
        Assert.True(code == 2, output);
        Assert.Contains("1 of 49 images", output);
        Assert.Contains(Path.Combine("blue", "corrupt.jpg"), output);
        Assert.Contains("data.skipBadImages=true", output);
        Assert.DoesNotContain("   at ", output);
        Assert.False(Directory.Exists(Path.Combine(_folder, "runs", "refused")));

        (code, output) = SimclrProcess.Run([.. run, "--set", "runName=skipped", "--set", "data.skipBadImages=true"]);
        Assert.True(code == 0, output);
        Assert.Contains("left out 1 unreadable image", output);
        Assert.True(output.Contains("images-train (43 train, 5 test, 3x32x32)", StringComparison.Ordinal), output); // 10% of each class held out before decoding (2 red, 3 of 25 blue)
        Assert.Matches(@"done: .*knn_accuracy 0\.\d+", output);
    }
}
