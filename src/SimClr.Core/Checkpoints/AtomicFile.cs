namespace SimClr.Core.Checkpoints;

/// <summary>
/// Replaces a file so that a reader sees the old contents or the new, never a mix: write a temporary file beside it,
/// flush it to disk, rename it over the target, then flush the directory entry. A failure at any point leaves the
/// previous file untouched (and removes the temporary).
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        string temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            SyncDirectory(folder);
        }
        catch (ArgumentOutOfRangeException e) when (e.ParamName == "value")
        {
            // .NET reports EFBIG from growing a file (a file-size limit, or the file system's largest file) this way
            TryDelete(temp);
            throw new IOException($"the file system refused to grow the file ({e.Message.Replace(" (Parameter 'value')", "", StringComparison.Ordinal)})", e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void SyncDirectory(string folder)
    {
        if (OperatingSystem.IsWindows()) return;
        try
        {
            // opening a directory read-only and flushing it persists the rename on Linux
            using var handle = File.OpenHandle(folder, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // some file systems refuse fsync on directories; the rename itself is still atomic
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
