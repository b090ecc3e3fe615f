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
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException e)
        {
            throw new DataSetException($"{path}: cannot be read ({e.Message})", e);
        }
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
