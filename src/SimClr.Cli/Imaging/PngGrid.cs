using SkiaSharp;
using static TorchSharp.torch;

namespace SimClr.Cli.Imaging;

/// <summary>Writes rows of images (float [C, H, W] in [0, 1], C = 1 or 3) as one PNG, each pixel scaled up.</summary>
internal static class PngGrid
{
    public static void Write(string path, IReadOnlyList<IReadOnlyList<Tensor>> rows, int scale = 4, int gap = 2)
    {
        int height = (int)rows[0][0].shape[1], width = (int)rows[0][0].shape[2];
        int columns = rows.Max(r => r.Count);
        int cell = scale * width + gap, line = scale * height + gap;
        using var bitmap = new SKBitmap(columns * cell + gap, rows.Count * line + gap, SKColorType.Rgba8888, SKAlphaType.Opaque);
        bitmap.Erase(SKColors.White);
        for (int r = 0; r < rows.Count; r++)
        {
            for (int c = 0; c < rows[r].Count; c++)
            {
                using var image = rows[r][c].detach().cpu().to_type(ScalarType.Float32).clamp(0, 1).mul(255).round().to_type(ScalarType.Byte);
                bool grey = image.shape[0] == 1;
                byte[] pixels = image.contiguous().data<byte>().ToArray();
                int plane = height * width;
                for (int y = 0; y < height * scale; y++)
                {
                    for (int x = 0; x < width * scale; x++)
                    {
                        int k = y / scale * width + x / scale;
                        var colour = grey ? new SKColor(pixels[k], pixels[k], pixels[k]) : new SKColor(pixels[k], pixels[plane + k], pixels[2 * plane + k]);
                        bitmap.SetPixel(gap + c * cell + x, gap + r * line + y, colour);
                    }
                }
            }
        }
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
