using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>
/// Reads CIFAR-10's binary distribution: records of 1 label byte + 3,072 pixel bytes (1,024 red, then green, then
/// blue, each 32x32 row-major), 10,000 records per file. The pixel bytes are already in [C, H, W] order.
/// </summary>
public static class CifarBinaryReader
{
    public const int Side = 32;
    public const int PixelBytes = 3 * Side * Side;
    public const int RecordBytes = 1 + PixelBytes;

    /// <summary>Reads one file; returns uint8 images [N, 3, 32, 32] and labels. Every defect is a DataSetException naming the file.</summary>
    public static (Tensor Images, int[] Labels) Read(string path, int classes = 10, int? expectedRecords = null)
    {
        if (!File.Exists(path)) throw new DataSetException($"{path}: file is missing");
        byte[] bytes = ReadAtMost(path, (long)(expectedRecords ?? MaxRecords) * RecordBytes);
        if (bytes.Length == 0) throw new DataSetException($"{path}: file is empty");
        if (bytes.Length % RecordBytes != 0)
        {
            long complete = bytes.Length / RecordBytes;
            throw new DataSetException($"{path}: truncated at byte {bytes.Length}: record {complete} is incomplete "
                + $"(a CIFAR record is {RecordBytes} bytes; {complete} whole records read)");
        }
        int records = bytes.Length / RecordBytes;
        if (expectedRecords is int expected && records != expected)
        {
            throw new DataSetException(records < expected
                ? $"{path}: truncated at byte {bytes.Length}: expected {expected} records ({(long)expected * RecordBytes} bytes), found {records}"
                : $"{path}: {records} records, expected {expected}: not a CIFAR-10 batch file");
        }
        var labels = new int[records];
        var pixels = new byte[(long)records * PixelBytes];
        for (int r = 0; r < records; r++)
        {
            int offset = r * RecordBytes;
            int label = bytes[offset];
            if (label >= classes)
                throw new DataSetException($"{path}: label {label} out of range 0..{classes - 1} in record {r} (byte {offset})");
            labels[r] = label;
            Buffer.BlockCopy(bytes, offset + 1, pixels, r * PixelBytes, PixelBytes);
        }
        return (tensor(pixels, [records, 3, Side, Side]), labels);
    }

    /// <summary>Records a file without an expected count may hold (CIFAR-10's batches hold 10,000).</summary>
    public const int MaxRecords = 100_000;

    /// <summary>
    /// The file's bytes when there are at most <paramref name="limit"/>: its size is checked before reading, and the
    /// read stops past the limit, so a huge file or a device (a link to /dev/zero reports size 0 and never ends) is an
    /// error after at most limit + 1 bytes, not an attempt to read it whole.
    /// </summary>
    private static byte[] ReadAtMost(string path, long limit)
    {
        string tooBig = $"{path}: larger than a CIFAR-10 batch file can be ({limit} bytes, {limit / RecordBytes} records of {RecordBytes}); "
            + "is it a device, a link to one, or another file? Put the binary version's files there";
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            long length = stream.CanSeek ? stream.Length : 0;
            if (length > limit) throw new DataSetException(tooBig);
            var buffer = new byte[Math.Min(limit + 1, length > 0 ? length + 1 : 1 << 20)];
            long total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    if (total > limit) throw new DataSetException(tooBig);
                    Array.Resize(ref buffer, (int)Math.Min(limit + 1, buffer.LongLength * 2));
                }
                int read = stream.Read(buffer, (int)total, (int)(buffer.Length - total));
                if (read == 0) break;
                total += read;
            }
            if (total > limit) throw new DataSetException(tooBig);
            if (total != buffer.Length) Array.Resize(ref buffer, (int)total);
            return buffer;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataSetException($"{path}: cannot be read ({e.Message})", e);
        }
    }

    /// <summary>Writes images [N, 3, 32, 32] (uint8) and labels as a CIFAR binary file (tests and tools).</summary>
    public static void Write(string path, byte[] pixels, IReadOnlyList<int> labels)
    {
        if (pixels.Length != labels.Count * PixelBytes)
            throw new ArgumentException($"{labels.Count} labels need {labels.Count * PixelBytes} pixel bytes, got {pixels.Length}", nameof(pixels));
        var bytes = new byte[labels.Count * RecordBytes];
        for (int r = 0; r < labels.Count; r++)
        {
            bytes[r * RecordBytes] = checked((byte)labels[r]);
            Buffer.BlockCopy(pixels, r * PixelBytes, bytes, r * RecordBytes + 1, PixelBytes);
        }
        File.WriteAllBytes(path, bytes);
    }
}
