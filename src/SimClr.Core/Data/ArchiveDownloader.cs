using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace SimClr.Core.Data;

/// <summary>Fetches a .tar.gz, checks its MD5 while streaming, and extracts it; nothing half-written is left behind.</summary>
public static class ArchiveDownloader
{
    public static async Task DownloadAndExtractAsync(Uri source, string md5, string root, string archiveName, string expectedFolder,
        HttpClient? http = null, IProgress<(long Done, long? Total)>? progress = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(root);
        string archive = Path.Combine(root, archiveName);
        string partial = archive + ".partial";
        bool ownClient = http is null;
        http ??= new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        try
        {
            if (!File.Exists(archive) || !Md5Of(archive).Equals(md5, StringComparison.OrdinalIgnoreCase))
            {
                string got;
                try
                {
                    using var response = await http.GetAsync(source, HttpCompletionOption.ResponseHeadersRead, cancel);
                    response.EnsureSuccessStatusCode();
                    long? total = response.Content.Headers.ContentLength;
                    await using var body = await response.Content.ReadAsStreamAsync(cancel);
                    await using (var file = File.Create(partial))
                    {
                        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
                        var buffer = new byte[1 << 20];
                        long done = 0;
                        int read;
                        while ((read = await body.ReadAsync(buffer, cancel)) > 0)
                        {
                            hash.AppendData(buffer, 0, read);
                            await file.WriteAsync(buffer.AsMemory(0, read), cancel);
                            done += read;
                            progress?.Report((done, total));
                        }
                        got = Convert.ToHexStringLower(hash.GetHashAndReset());
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    File.Delete(partial);
                    throw new DataSetException($"Could not download {source} ({e.Message}). Without network access, fetch {archiveName} "
                        + $"elsewhere and extract it into {root} so that {expectedFolder} holds its files.", e);
                }
                if (!got.Equals(md5, StringComparison.OrdinalIgnoreCase))
                {
                    File.Delete(partial);
                    throw new DataSetException($"{source}: MD5 {got} does not match the expected {md5}; the download was discarded");
                }
                File.Move(partial, archive, overwrite: true);
            }
            ExtractTarGz(archive, root);
            if (!Directory.Exists(expectedFolder))
                throw new DataSetException($"{archive}: extracted, but it holds no {Path.GetFileName(expectedFolder)} folder");
        }
        finally
        {
            if (ownClient) http.Dispose();
        }
    }

    public static string Md5Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(stream));
    }

    /// <summary>Extracts into a temporary folder first, then moves entries into place; refuses entries that escape the root.</summary>
    public static void ExtractTarGz(string archive, string root)
    {
        string fullRoot = Path.GetFullPath(root) + Path.DirectorySeparatorChar;
        string staging = Path.Combine(root, ".extracting-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress))
            using (var tar = new TarReader(gzip))
            {
                TarEntry? entry;
                while ((entry = tar.GetNextEntry()) is not null)
                {
                    string target = Path.GetFullPath(Path.Combine(staging, entry.Name));
                    if (!target.StartsWith(Path.GetFullPath(staging) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                        throw new DataSetException($"{archive}: entry '{entry.Name}' points outside the extraction folder; refused");
                    if (entry.EntryType is TarEntryType.Directory) Directory.CreateDirectory(target);
                    else if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                    {
                        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                        entry.ExtractToFile(target, overwrite: true);
                    }
                }
            }
            foreach (string top in Directory.EnumerateFileSystemEntries(staging))
            {
                string destination = Path.Combine(fullRoot, Path.GetFileName(top));
                if (Directory.Exists(destination)) Directory.Delete(destination, recursive: true);
                else if (File.Exists(destination)) File.Delete(destination);
                Directory.Move(top, destination);
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new DataSetException($"{archive}: not a valid .tar.gz ({e.Message})", e);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }
}
