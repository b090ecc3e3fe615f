using System.Buffers.Binary;
using System.IO.Compression;

namespace SimClr.Core.Data;

/// <summary>
/// Reads IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed: two zero bytes, a type byte (0x08 = uint8),
/// the number of dimensions, big-endian int32 sizes, then the data.
/// </summary>
public static class IdxReader
{
    /// <summary>Returns the dimensions and the uint8 data; every defect is a DataSetException naming the file.</summary>
    public static (int[] Dimensions, byte[] Data) Read(string path, int expectedDimensions)
    {
        if (!File.Exists(path)) throw new DataSetException($"{path}: file is missing");
        byte[] bytes;
        string tooBig = $"{path}: more than {MaxBytes / 1024 / 1024} MiB{{0}}, larger than any IDX file of the data sets this reads (Fashion-MNIST's largest is 45 MiB); "
            + "is it a device, a link to one, or another file?";
        try
        {
            using (var file = File.OpenRead(path))
                bytes = ReadAtMost(file, MaxBytes) ?? throw new DataSetException(string.Format(System.Globalization.CultureInfo.InvariantCulture, tooBig, ""));
            if (bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b)
            {
                using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                bytes = ReadAtMost(gzip, MaxBytes) ?? throw new DataSetException(string.Format(System.Globalization.CultureInfo.InvariantCulture, tooBig, " once decompressed"));
            }
        }
        catch (InvalidDataException e)
        {
            throw new DataSetException($"{path}: corrupt gzip data ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new DataSetException($"{path}: cannot be read ({e.Message})", e);
        }

        if (bytes.Length < 4) throw new DataSetException($"{path}: truncated at byte {bytes.Length}: no IDX header");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        uint expectedMagic = 0x0800u | (uint)expectedDimensions;
        if (magic != expectedMagic)
            throw new DataSetException($"{path}: bad magic number 0x{magic:x8}, expected 0x{expectedMagic:x8} (uint8 IDX with {expectedDimensions} dimensions)");
        int header = 4 + 4 * expectedDimensions;
        if (bytes.Length < header) throw new DataSetException($"{path}: truncated at byte {bytes.Length}: header needs {header} bytes");
        var dims = new int[expectedDimensions];
        long count = 1;
        for (int d = 0; d < expectedDimensions; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
            if (dims[d] <= 0) throw new DataSetException($"{path}: dimension {d} is {dims[d]}");
            count *= dims[d];
        }
        if (bytes.Length - header < count)
            throw new DataSetException($"{path}: truncated at byte {bytes.Length}: {string.Join("x", dims)} needs {header + count} bytes");
        if (bytes.Length - header > count)
            throw new DataSetException($"{path}: {bytes.Length - header - count} bytes after the data of {string.Join("x", dims)}");
        return (dims, bytes[header..]);
    }

    /// <summary>Most bytes an IDX file may hold (plain or decompressed): a device such as /dev/zero never ends, so it is
    /// refused after this many instead of being read until memory runs out.</summary>
    public const int MaxBytes = 128 << 20;

    /// <summary>The stream's bytes when there are at most <paramref name="limit"/>; null when there are more (reading stops one byte past).</summary>
    private static byte[]? ReadAtMost(Stream stream, int limit)
    {
        var buffer = new byte[Math.Min(limit + 1, 1 << 20)];
        int total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (total > limit) return null;
                Array.Resize(ref buffer, (int)Math.Min(limit + 1L, buffer.Length * 2L));
            }
            int read = stream.Read(buffer, total, buffer.Length - total);
            if (read == 0) break;
            total += read;
        }
        if (total > limit) return null;
        Array.Resize(ref buffer, total);
        return buffer;
    }

    /// <summary>Writes a plain or gzip IDX uint8 file (tests and tools).</summary>
    public static void Write(string path, int[] dimensions, byte[] data, bool gzip)
    {
        var header = new byte[4 + 4 * dimensions.Length];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x0800u | (uint)dimensions.Length);
        for (int d = 0; d < dimensions.Length; d++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * d), dimensions[d]);
        using var file = File.Create(path);
        using Stream output = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        output.Write(header);
        output.Write(data);
    }
}
