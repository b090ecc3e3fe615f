using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace SimClr.Core.Stages;

/// <summary>
/// A TensorBoard event file (events.out.tfevents.*), as PyTorch's SummaryWriter writes it: TFRecord framing (length,
/// masked CRC-32C of the length, a tensorflow.Event message, masked CRC-32C of the message), one Event per scalar, and
/// wall_time in seconds since the Unix epoch (TorchSharp's writer put .NET ticks there, 6.4e17, which TensorBoard
/// shows as a date in the year 20 billion and uses for its relative time axis). Each append opens the file, writes
/// whole records and closes it, so a record is either written or reported as an IOException.
/// </summary>
public sealed class TensorBoardEvents
{
    private static int s_files;

    public TensorBoardEvents(string folder)
    {
        Directory.CreateDirectory(folder);
        double now = UnixSeconds();
        FilePath = Path.Combine(folder, FormattableString.Invariant(
            $"events.out.tfevents.{(long)now}.{System.Net.Dns.GetHostName()}.{Environment.ProcessId}.{Interlocked.Increment(ref s_files)}"));
        var record = new MemoryStream();
        WriteRecord(record, Event(now, step: 0, fileVersion: "brain.Event:2", summary: null));
        Append(record);
    }

    /// <summary>The file this writer appends to.</summary>
    public string FilePath { get; }

    /// <summary>Seconds since 1970-01-01 UTC, with fractions: what TensorBoard expects in wall_time.</summary>
    public static double UnixSeconds() => (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds;

    /// <summary>Appends one scalar event per value, all at <paramref name="step"/> and the current time.</summary>
    public void AddScalars(long step, IEnumerable<(string Tag, float Value)> scalars)
    {
        double now = UnixSeconds();
        var records = new MemoryStream();
        foreach (var (tag, value) in scalars) WriteRecord(records, Event(now, step, fileVersion: null, summary: SimpleValue(tag, value)));
        if (records.Length > 0) Append(records);
    }

    private void Append(MemoryStream records)
    {
        using var file = new FileStream(FilePath, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);
        file.Write(records.GetBuffer(), 0, (int)records.Length);
    }

    // tensorflow.Event: 1 wall_time (double), 2 step (int64), 3 file_version (string), 5 summary (Summary)
    private static byte[] Event(double wallTime, long step, string? fileVersion, byte[]? summary)
    {
        var e = new MemoryStream();
        e.WriteByte(1 << 3 | 1);
        Span<byte> eight = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(eight, wallTime);
        e.Write(eight);
        if (step != 0)
        {
            e.WriteByte(2 << 3);
            Varint(e, (ulong)step);
        }
        if (fileVersion is not null) LengthDelimited(e, 3, Encoding.UTF8.GetBytes(fileVersion));
        if (summary is not null) LengthDelimited(e, 5, summary);
        return e.ToArray();
    }

    // tensorflow.Summary: 1 value (repeated Summary.Value); Summary.Value: 1 tag (string), 2 simple_value (float)
    private static byte[] SimpleValue(string tag, float value)
    {
        var v = new MemoryStream();
        LengthDelimited(v, 1, Encoding.UTF8.GetBytes(tag));
        v.WriteByte(2 << 3 | 5);
        Span<byte> four = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(four, value);
        v.Write(four);
        var s = new MemoryStream();
        LengthDelimited(s, 1, v.ToArray());
        return s.ToArray();
    }

    private static void LengthDelimited(MemoryStream to, int field, byte[] bytes)
    {
        to.WriteByte((byte)(field << 3 | 2));
        Varint(to, (ulong)bytes.Length);
        to.Write(bytes);
    }

    private static void Varint(MemoryStream to, ulong value)
    {
        while (value >= 0x80)
        {
            to.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        to.WriteByte((byte)value);
    }

    private static void WriteRecord(MemoryStream to, byte[] data)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)data.Length);
        Span<byte> crc = stackalloc byte[4];
        to.Write(length);
        BinaryPrimitives.WriteUInt32LittleEndian(crc, MaskedCrc32C(length));
        to.Write(crc);
        to.Write(data);
        BinaryPrimitives.WriteUInt32LittleEndian(crc, MaskedCrc32C(data));
        to.Write(crc);
    }

    /// <summary>CRC-32C (Castagnoli), masked as TFRecord masks it.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>: 0xE3069283 for "123456789".</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }
}
