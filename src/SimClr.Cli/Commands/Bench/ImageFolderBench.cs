using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SkiaSharp;

namespace SimClr.Cli.Commands.Bench;

/// <summary>`simclr bench imagefolder`: images/s of an image folder's cache build (decode, scale, crop, write), on
/// generated PNG and JPEG files (half each) of a given size.</summary>
internal static class ImageFolderBench
{
    public static Command Create()
    {
        var images = new Option<int>("--images") { Description = "images to generate and decode", DefaultValueFactory = _ => 2000 };
        var source = new Option<int>("--source") { Description = "side of the generated files in pixels", DefaultValueFactory = _ => 256 };
        var size = new Option<int>("--size") { Description = "data.imageSize: the side they are decoded to", DefaultValueFactory = _ => 96 };
        var repeats = CommonOptions.Repeats("timed builds (median and spread are reported)", 3);
        var command = new Command("imagefolder", "Image folder cache build throughput (decode + scale + centre crop + write), images/s on every core.")
        {
            images, source, size, repeats,
        };
        command.SetAction(r => ExitCodes.Run("simclr bench imagefolder", () => Run(r.GetValue(images), r.GetValue(source), r.GetValue(size), r.GetValue(repeats))));
        return command;
    }

    private static int Run(int count, int sourceSide, int size, int repeats)
    {
        if (count < 20 || sourceSide < 8 || size < 8 || repeats < 1) throw new ConfigException("--images must be >= 20, --source and --size >= 8, --repeats >= 1");
        string root = Directory.CreateTempSubdirectory("simclr-bench-imagefolder-").FullName;
        try
        {
            var random = new Random(0);
            long bytes = 0;
            for (int i = 0; i < count; i++)
            {
                string folder = Path.Combine(root, $"class{i % 10}");
                Directory.CreateDirectory(folder);
                bool jpeg = i % 2 == 1;
                using var bitmap = new SKBitmap(sourceSide, sourceSide * 3 / 4);
                using (var canvas = new SKCanvas(bitmap))
                {
                    canvas.Clear(new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)));
                    for (int k = 0; k < 12; k++)
                    {
                        using var paint = new SKPaint { Color = new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)), IsAntialias = true };
                        canvas.DrawCircle(random.Next(sourceSide), random.Next(sourceSide), 4 + random.Next(sourceSide / 4), paint);
                    }
                }
                using var image = SKImage.FromBitmap(bitmap);
                using var data = image.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 90);
                File.WriteAllBytes(Path.Combine(folder, $"{i}.{(jpeg ? "jpg" : "png")}"), data.ToArray());
                bytes += data.Size;
            }
            var listing = ImageFolder.List(root, 0.1, 0);
            string fingerprint = ImageFolder.Fingerprint(root, listing);
            var rates = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                string cache = Path.Combine(root, ImageFolder.CacheFileName(size));
                File.Delete(cache);
                var clock = Stopwatch.StartNew();
                ImageFolder.Build(root, listing, size, false, fingerprint, "bench", cache, null, null, CancellationToken.None);
                rates.Add(count / clock.Elapsed.TotalSeconds);
            }
            var (median, min, max) = Timings.Spread(rates);
            Console.WriteLine($"simclr imagefolder cache build ({Environment.ProcessorCount} cores, {count} files of {sourceSide}x{sourceSide * 3 / 4}, half PNG half JPEG, "
                + $"{bytes / count / 1024.0:F0} KiB each on average, to {size}x{size}): median {median:F0} images/s, min {min:F0}, max {max:F0} ({repeats} builds)");
            return ExitCodes.Success;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
