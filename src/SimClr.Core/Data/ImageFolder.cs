using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SimClr.Core.Randomness;
using SkiaSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>
/// A folder of PNG and JPEG files as a data set (data.name imagefolder): <c>train/</c> and <c>test/</c> each with a
/// subfolder per class; or a subfolder per class, split by a seeded, class-balanced fraction (data.testFraction); or a
/// flat folder of unlabelled images (one class, for pre-training). Every image is decoded once (SkiaSharp, in
/// parallel), its shorter side scaled to data.imageSize and the centre cropped square, into a cache file beside the data
/// (<see cref="CacheFileName"/>): a JSON header naming the source, size, count, classes, labels and the folder's
/// fingerprint (names, sizes and times of every file), then the RGB pixels as uint8 [N, 3, S, S], training images
/// first. The cache is rebuilt when the folder's fingerprint or the options change, and read memory-mapped.
/// </summary>
public static class ImageFolder
{
    public const string Magic = "SIMCLRIF";
    public const int Version = 1;
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];
    public const string UnlabelledClass = "unlabelled";

    /// <summary>The cache file for images of <paramref name="size"/> pixels: in the folder, hidden.</summary>
    public static string CacheFileName(int size) => $".simclr-imagefolder-{size}px.cache";

    /// <summary>Where the cache of a folder that cannot be written goes: $XDG_CACHE_HOME (or ~/.cache)/simclr/imagefolder-HASH,
    /// HASH from the folder's full path.</summary>
    public static string FallbackCacheFolder(string root)
    {
        string home = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(root))))[..16];
        return Path.Combine(home, "simclr", $"imagefolder-{hash}");
    }

    /// <summary>The files of the folder, their labels and which are test images (before decoding).</summary>
    public sealed record Listing(IReadOnlyList<string> Files, int[] Labels, bool[] IsTest, IReadOnlyList<string> ClassNames, string Layout);

    public sealed record CacheHeader(string Source, int ImageSize, int Channels, int Train, int Test, string[] ClassNames, int[] Labels,
        string Fingerprint, string Options, double[] Mean, double[] Std, int Skipped, string[] SkippedFiles, string Layout);

    public static Listing List(string root, double testFraction, ulong splitSeed)
    {
        if (!Directory.Exists(root)) throw new DataSetException($"image folder {root} does not exist; set data.root to a folder of class subfolders (or train/ and test/) of PNG or JPEG files");
        static bool IsImage(string f) => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant());
        static string[] Images(string folder) => Directory.EnumerateFiles(folder).Where(IsImage).Order(StringComparer.Ordinal).ToArray();
        static string[] Classes(string folder) => Directory.EnumerateDirectories(folder).Select(Path.GetFileName).Where(d => !d!.StartsWith('.')).Order(StringComparer.Ordinal).ToArray()!;

        string train = Path.Combine(root, "train"), test = Path.Combine(root, "test");
        var files = new List<string>();
        var labels = new List<int>();
        var isTest = new List<bool>();
        if (Directory.Exists(train) && Directory.Exists(test))
        {
            var classes = Classes(train);
            if (classes.Length == 0) throw new DataSetException($"{train} has no class subfolders");
            var extra = Classes(test).Except(classes).ToList();
            if (extra.Count > 0) throw new DataSetException($"{test} has classes that {train} lacks: {string.Join(", ", extra)}");
            foreach (var (part, flag) in new[] { (train, false), (test, true) })
            {
                for (int c = 0; c < classes.Length; c++)
                {
                    string folder = Path.Combine(part, classes[c]);
                    if (!Directory.Exists(folder)) continue;
                    foreach (string f in Images(folder)) { files.Add(f); labels.Add(c); isTest.Add(flag); }
                }
            }
            return Check(new Listing(files, [.. labels], [.. isTest], classes, "train/ and test/ subfolders"), root);
        }
        var subfolders = Classes(root);
        string[] names;
        if (subfolders.Length > 0)
        {
            names = subfolders;
            for (int c = 0; c < names.Length; c++)
                foreach (string f in Images(Path.Combine(root, names[c]))) { files.Add(f); labels.Add(c); }
        }
        else
        {
            names = [UnlabelledClass];
            foreach (string f in Images(root)) { files.Add(f); labels.Add(0); }
        }
        // a seeded, class-balanced test split: round(testFraction x n) of each class (at least one where a class has two)
        var test01 = new bool[files.Count];
        foreach (var group in Enumerable.Range(0, files.Count).GroupBy(i => labels[i]))
        {
            int[] members = group.ToArray();
            var rng = new CounterRng(splitSeed, (ulong)group.Key, 0x54455354UL);
            for (int i = members.Length - 1; i > 0; i--)
            {
                int j = rng.NextInt(i + 1);
                (members[i], members[j]) = (members[j], members[i]);
            }
            int take = members.Length < 2 ? 0 : Math.Clamp((int)Math.Round(testFraction * members.Length, MidpointRounding.AwayFromZero), 1, members.Length - 1);
            foreach (int m in members.Take(take)) test01[m] = true;
        }
        string share = (testFraction * 100).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) + "%";
        string layout = subfolders.Length > 0 ? $"class subfolders, {share} of each class for testing (seed {splitSeed})" : $"flat (unlabelled), {share} for testing (seed {splitSeed})";
        return Check(new Listing(files, [.. labels], test01, names, layout), root);
    }

    private static Listing Check(Listing listing, string root)
    {
        if (listing.Files.Count == 0) throw new DataSetException($"{root} holds no PNG or JPEG files ({string.Join(", ", Extensions)}) in the layouts simclr reads: train/<class>/, test/<class>/; <class>/; or the folder itself");
        if (!listing.IsTest.Contains(false)) throw new DataSetException($"{root}: no training images");
        if (!listing.IsTest.Contains(true)) throw new DataSetException($"{root}: no test images (add test/<class>/ folders, or more images for data.testFraction to take)");
        return listing;
    }

    /// <summary>SHA-256 over every file's relative name, size and last write time: a changed, added or removed file changes it.</summary>
    public static string Fingerprint(string root, Listing listing)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int i = 0; i < listing.Files.Count; i++)
        {
            var info = new FileInfo(listing.Files[i]);
            sha.AppendData(Encoding.UTF8.GetBytes($"{Path.GetRelativePath(root, info.FullName)}\0{info.Length}\0{info.LastWriteTimeUtc.Ticks}\0{listing.Labels[i]}\0{listing.IsTest[i]}\n"));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Loads the folder's images from its cache, building the cache first when it is missing or stale.</summary>
    public static TrainTestSplit Load(string root, int imageSize, double testFraction, ulong splitSeed, bool skipBadImages,
        IProgress<(long Done, long? Total)>? progress = null, Action<string>? log = null, CancellationToken cancel = default)
    {
        var listing = List(root, testFraction, splitSeed);
        string fingerprint = Fingerprint(root, listing);
        string options = $"size {imageSize}, skipBadImages {skipBadImages}";
        // beside the data, or, where that folder cannot be written (a read-only mount), in the user's cache folder
        string[] places = [root, FallbackCacheFolder(root)];
        bool Current(CacheHeader? h) => h is not null && h.Fingerprint == fingerprint && h.Options == options && h.ImageSize == imageSize;
        foreach (string place in places)
        {
            string candidate = Path.Combine(place, CacheFileName(imageSize));
            if (Current(TryReadHeader(candidate, out _))) return Open(candidate);
        }
        for (int i = 0; ; i++)
        {
            string cache = Path.Combine(places[i], CacheFileName(imageSize));
            bool stale = TryReadHeader(cache, out _) is not null;
            log?.Invoke($"imagefolder: decoding {listing.Files.Count} images of {root} ({listing.Layout}) to {imageSize}x{imageSize} into {cache}"
                + (stale ? " (the folder or the options changed since the cache was built)" : ""));
            try
            {
                Directory.CreateDirectory(places[i]);
                Build(root, listing, imageSize, skipBadImages, fingerprint, options, cache, progress, log, cancel);
                return Open(cache);
            }
            catch (UnauthorizedAccessException e) when (i + 1 < places.Length)
            {
                log?.Invoke($"imagefolder: cannot write in {places[i]} ({e.Message}); the cache goes to {places[i + 1]} instead");
            }
        }
    }

    /// <summary>Decodes every image (in parallel), and writes the cache atomically: a bad image is listed (all of them,
    /// in one error) or skipped and counted with <paramref name="skipBadImages"/>.</summary>
    public static void Build(string root, Listing listing, int size, bool skipBadImages, string fingerprint, string options, string cache,
        IProgress<(long Done, long? Total)>? progress, Action<string>? log, CancellationToken cancel)
    {
        int n = listing.Files.Count;
        int pixels = 3 * size * size;
        // training images first: each part is then one contiguous range of the file
        int[] order = [.. Enumerable.Range(0, n).Where(i => !listing.IsTest[i]), .. Enumerable.Range(0, n).Where(i => listing.IsTest[i])];
        string temp = cache + $".{Environment.ProcessId}.tmp";
        var bad = new System.Collections.Concurrent.ConcurrentDictionary<int, string>();
        long done = 0;
        var sums = new double[3];
        var squares = new double[3];
        var gate = new Lock();
        string directory = Path.GetDirectoryName(Path.GetFullPath(cache))!;
        var pixelsFile = Path.Combine(directory, $".{Path.GetFileName(cache)}.pixels.{Environment.ProcessId}.tmp");
        try
        {
            using (var handle = File.OpenHandle(pixelsFile, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.None, (long)n * pixels))
            {
                Parallel.For(0, n, new ParallelOptions { CancellationToken = cancel, MaxDegreeOfParallelism = Environment.ProcessorCount }, () => (new double[3], new double[3], new byte[pixels]), (k, _, local) =>
                {
                    int i = order[k];
                    string? error = Decode(listing.Files[i], size, local.Item3);
                    if (error is not null) bad[k] = $"{Path.GetRelativePath(root, listing.Files[i])}: {error}";
                    else
                    {
                        RandomAccess.Write(handle, local.Item3, (long)k * pixels);
                        if (!listing.IsTest[i])
                        {
                            for (int c = 0; c < 3; c++)
                            {
                                var plane = local.Item3.AsSpan(c * size * size, size * size);
                                double s = 0, q = 0;
                                foreach (byte b in plane) { s += b; q += b * b; }
                                local.Item1[c] += s;
                                local.Item2[c] += q;
                            }
                        }
                    }
                    long now = Interlocked.Increment(ref done);
                    if (now % 256 == 0 || now == n) progress?.Report((now, n));
                    return local;
                }, local =>
                {
                    lock (gate)
                    {
                        for (int c = 0; c < 3; c++) { sums[c] += local.Item1[c]; squares[c] += local.Item2[c]; }
                    }
                });
            }
            if (!bad.IsEmpty && !skipBadImages)
            {
                var list = bad.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList();
                throw new DataSetException($"{list.Count} of {n} images in {root} cannot be read; fix or remove them, or set data.skipBadImages=true to leave them out:\n  - "
                    + string.Join("\n  - ", list.Take(20)) + (list.Count > 20 ? $"\n  - ... and {list.Count - 20} more" : ""));
            }
            var kept = Enumerable.Range(0, n).Where(k => !bad.ContainsKey(k)).ToArray();
            int train = kept.Count(k => !listing.IsTest[order[k]]);
            int test = kept.Length - train;
            if (train == 0 || test == 0) throw new DataSetException($"{root}: after leaving out {bad.Count} unreadable images, {train} training and {test} test images are left");
            double count = (double)train * size * size;
            var header = new CacheHeader(Path.GetFullPath(root), size, 3, train, test, [.. listing.ClassNames], [.. kept.Select(k => listing.Labels[order[k]])],
                fingerprint, options, [.. sums.Select(s => s / count / 255)], [.. Enumerable.Range(0, 3).Select(c => Math.Sqrt(Math.Max(0, squares[c] / count - Math.Pow(sums[c] / count, 2))) / 255)],
                bad.Count, [.. bad.OrderBy(kv => kv.Key).Select(kv => kv.Value)], listing.Layout);
            if (bad.Count > 0) log?.Invoke($"imagefolder: left out {bad.Count} unreadable image(s) (data.skipBadImages), first: {header.SkippedFiles[0]}");
            WriteCache(temp, header, pixelsFile, kept, pixels);
            File.Move(temp, cache, overwrite: true);
        }
        finally
        {
            File.Delete(pixelsFile);
            File.Delete(temp);
        }
    }

    private static void WriteCache(string path, CacheHeader header, string pixelsFile, int[] kept, int pixels)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        // magic, version, header length, header, zero padding to a 64-byte boundary, then the pixels
        long start = (Magic.Length + 4 + 8 + json.Length + 63) / 64 * 64;
        using var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        output.Write(Encoding.ASCII.GetBytes(Magic));
        output.Write(BitConverter.GetBytes(Version));
        output.Write(BitConverter.GetBytes((long)json.Length));
        output.Write(json);
        output.Write(new byte[start - output.Position]);
        using var input = File.OpenHandle(pixelsFile);
        var buffer = new byte[pixels];
        foreach (int k in kept)
        {
            RandomAccess.Read(input, buffer, (long)k * pixels);
            output.Write(buffer);
        }
        output.Flush(flushToDisk: true);
    }

    /// <summary>The header of a cache file, or null when it is missing or not one (a damaged cache is rebuilt).</summary>
    public static CacheHeader? TryReadHeader(string path, out long pixelsStart)
    {
        pixelsStart = 0;
        if (!File.Exists(path)) return null;
        try
        {
            using var stream = File.OpenRead(path);
            var fixedPart = new byte[Magic.Length + 4 + 8];
            stream.ReadExactly(fixedPart);
            if (Encoding.ASCII.GetString(fixedPart, 0, Magic.Length) != Magic || BitConverter.ToInt32(fixedPart, Magic.Length) != Version) return null;
            long length = BitConverter.ToInt64(fixedPart, Magic.Length + 4);
            if (length < 2 || length > 1L << 30) return null;
            var json = new byte[length];
            stream.ReadExactly(json);
            var header = JsonSerializer.Deserialize<CacheHeader>(json);
            if (header is null) return null;
            pixelsStart = (fixedPart.Length + length + 63) / 64 * 64;
            long expected = pixelsStart + (long)(header.Train + header.Test) * header.Channels * header.ImageSize * header.ImageSize;
            return stream.Length == expected && header.Labels.Length == header.Train + header.Test ? header : null;
        }
        catch (Exception e) when (e is IOException or JsonException or EndOfStreamException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The cache's images, memory-mapped (the pages are read as they are used), as train and test.</summary>
    public static TrainTestSplit Open(string cache)
    {
        var header = TryReadHeader(cache, out long start) ?? throw new DataSetException($"{cache} is not an image cache; delete it to rebuild");
        int s = header.ImageSize;
        long n = header.Train + header.Test;
        using var all = from_file(cache, shared: false, size: new FileInfo(cache).Length, dtype: ScalarType.Byte);
        using var images = all.narrow(0, start, n * 3 * s * s).view(n, 3, s, s);
        string name = Path.GetFileName(header.Source.TrimEnd('/'));
        var train = new ImageDataSet($"{name}-train", images.narrow(0, 0, header.Train), header.Labels[..header.Train], header.ClassNames, header.Mean, header.Std);
        var test = new ImageDataSet($"{name}-test", images.narrow(0, header.Train, header.Test), header.Labels[header.Train..], header.ClassNames, header.Mean, header.Std);
        return new TrainTestSplit(train, test);
    }

    /// <summary>One image, its shorter side scaled to <paramref name="size"/> and the centre square cropped, as RGB planes
    /// (CHW) into <paramref name="into"/>; or why it cannot be read.</summary>
    public static string? Decode(string path, int size, byte[] into)
    {
        try
        {
            using var codec = SKCodec.Create(path, out var result);
            if (codec is null) return $"not a PNG or JPEG image ({result})";
            using var image = SKBitmap.Decode(codec);
            if (image is null || image.Width < 1 || image.Height < 1) return "cannot be decoded";
            int side = Math.Min(image.Width, image.Height);
            var source = SKRectI.Create((image.Width - side) / 2, (image.Height - side) / 2, side, side);
            using var target = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul));
            using (var canvas = new SKCanvas(target))
            using (var whole = SKImage.FromBitmap(image))
            {
                canvas.Clear(SKColors.Black);
                canvas.DrawImage(whole, source, SKRect.Create(size, size), new SKSamplingOptions(SKCubicResampler.Mitchell));
            }
            var rgba = target.GetPixelSpan();
            int plane = size * size;
            for (int p = 0; p < plane; p++)
            {
                into[p] = rgba[4 * p];
                into[plane + p] = rgba[4 * p + 1];
                into[2 * plane + p] = rgba[4 * p + 2];
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            return e.Message;
        }
    }
}
