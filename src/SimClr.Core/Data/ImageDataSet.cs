using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>
/// Images as one uint8 tensor [N, C, H, W] on the CPU (3 KB per CIFAR image: what the coordinator ships to workers),
/// their labels, and the per-channel mean/std that Normalize uses. Owns its tensor.
/// </summary>
public sealed class ImageDataSet : IDisposable
{
    public ImageDataSet(string name, Tensor images, int[] labels, IReadOnlyList<string> classNames, double[] mean, double[] std)
    {
        if (images.dtype != ScalarType.Byte || images.dim() != 4)
            throw new ArgumentException($"images must be a uint8 tensor [N, C, H, W]; got {images.dtype} with {images.dim()} dimensions", nameof(images));
        if (images.shape[0] != labels.Length)
            throw new ArgumentException($"{images.shape[0]} images but {labels.Length} labels", nameof(labels));
        if (mean.Length != images.shape[1] || std.Length != images.shape[1])
            throw new ArgumentException($"mean/std need one value per channel ({images.shape[1]})", nameof(mean));
        int bad = Array.FindIndex(labels, l => l < 0 || l >= classNames.Count);
        if (bad >= 0)
            throw new ArgumentException($"label {labels[bad]} of image {bad} is outside 0..{classNames.Count - 1}", nameof(labels));
        Name = name;
        Images = images;
        Labels = labels;
        ClassNames = classNames;
        Mean = mean;
        Std = std;
    }

    public string Name { get; }

    /// <summary>uint8 [N, C, H, W], CPU.</summary>
    public Tensor Images { get; }

    public int[] Labels { get; }

    public IReadOnlyList<string> ClassNames { get; }

    public double[] Mean { get; }

    public double[] Std { get; }

    public int Count => Labels.Length;

    public int Channels => (int)Images.shape[1];

    public int Height => (int)Images.shape[2];

    public int Width => (int)Images.shape[3];

    /// <summary>A new data set of the given images (copied), same classes and normalisation.</summary>
    public ImageDataSet Subset(IReadOnlyList<int> indices, string? name = null)
    {
        using var index = tensor(indices.Select(i => (long)i).ToArray(), ScalarType.Int64);
        return new ImageDataSet(name ?? Name, Images.index_select(0, index), indices.Select(i => Labels[i]).ToArray(), ClassNames, Mean, Std);
    }

    /// <summary>Images at the given indices as one uint8 batch [B, C, H, W].</summary>
    public Tensor Batch(ReadOnlySpan<long> indices)
    {
        using var index = tensor(indices.ToArray(), ScalarType.Int64);
        return Images.index_select(0, index);
    }

    /// <summary>Images hashed by <see cref="Fingerprint"/>: enough to tell two data sets apart, few enough to read at once.</summary>
    public const int FingerprintSamples = 64;

    /// <summary>Identifies these images without reading them all: the SHA-256 (16 hex digits) of the shape and of
    /// <see cref="FingerprintSamples"/> evenly spaced images. Two processes that opened the same files (in the same
    /// order, at the same size) agree; a different, reordered, resized or truncated set almost surely does not.</summary>
    public string Fingerprint()
    {
        int n = Math.Min(Count, FingerprintSamples);
        var picks = Enumerable.Range(0, n).Select(k => (long)((double)k * Count / n)).ToArray();
        using var sample = Batch(picks);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (long d in Images.shape) hash.AppendData(BitConverter.GetBytes(d));
        hash.AppendData(sample.bytes);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    public void Dispose() => Images.Dispose();
}
