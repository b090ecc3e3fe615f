using System.Buffers.Binary;
using System.Text;
using SimClr.Core.Config;
using SimClr.Core.Stages;

namespace SimClr.Core.Tests.Stages;

public sealed class MetricsLogTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-metrics-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    /// <summary>A full disk under the TensorBoard events (a real ENOSPC: the events file is made a link to /dev/full):
    /// the error names the events folder and says what the system said, as one message.</summary>
    [Fact]
    public void A_full_disk_under_the_tensorboard_events_is_an_error_naming_the_events_folder()
    {
        var run = RunDirectory.Create(TinyRuns.Config(Stage.Pretrain, _runs, "events-full"));
        using var log = new MetricsLog(run);
        string events = Assert.Single(Directory.GetFiles(run.EventsFolder));
        File.Delete(events);
        File.CreateSymbolicLink(events, "/dev/full");
        var e = Assert.Throws<RunOutputException>(() => log.Write("step", 1, new Dictionary<string, double> { ["loss"] = 1 }));
        Assert.Equal(run.EventsFolder, e.Path);
        Assert.StartsWith($"could not write {run.EventsFolder}: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("No space left on device", e.Message, StringComparison.Ordinal);
        Assert.Single(File.ReadAllLines(run.MetricsFile)); // metrics.jsonl, on a disk with room, has the record
    }

    /// <summary>
    /// The TensorBoard events a run writes, read back as TensorBoard reads them: every record's CRCs check out, and
    /// wall_time is seconds since the Unix epoch (it was .NET ticks, 6.39e17), between the times before and after.
    /// </summary>
    [Fact]
    public void TensorBoard_events_have_wall_time_in_unix_seconds_and_valid_records()
    {
        var run = RunDirectory.Create(TinyRuns.Config(Stage.Pretrain, _runs, "events"));
        double before = (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds;
        using (var log = new MetricsLog(run))
        {
            log.Write("step", 10, new Dictionary<string, double> { ["loss"] = 3.25, ["lr"] = 0.5, ["nan"] = double.NaN });
            log.Write("epoch", 20, new Dictionary<string, double> { ["knn_accuracy"] = 0.75 });
        }
        double after = (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds;
        string file = Assert.Single(Directory.GetFiles(run.EventsFolder));
        Assert.Matches(@"^events\.out\.tfevents\.\d{10}\.", Path.GetFileName(file)); // Unix seconds in the name too, as PyTorch's
        var events = ReadEvents(File.ReadAllBytes(file));
        Assert.Equal(4, events.Count); // the file version, then one event per finite scalar
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        foreach (var e in events) Assert.InRange(e.WallTime, Math.Floor(before), after + 1);
        Assert.Equal([(10L, "step/loss", 3.25f), (10L, "step/lr", 0.5f), (20L, "epoch/knn_accuracy", 0.75f)],
            events.Skip(1).Select(e => (e.Step, e.Tag!, e.Value)));
    }

    [Fact]
    public void Crc32C_is_the_castagnoli_checksum() => Assert.Equal(0xE3069283u, TensorBoardEvents.Crc32C("123456789"u8));

    private sealed record Event(double WallTime, long Step, string? FileVersion, string? Tag, float Value);

    /// <summary>TFRecord framing and the few tensorflow.Event fields a scalar uses, decoded independently of the writer.</summary>
    private static List<Event> ReadEvents(byte[] bytes)
    {
        var events = new List<Event>();
        int at = 0;
        while (at < bytes.Length)
        {
            int length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at)));
            Assert.Equal(Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)));
            var data = bytes.AsSpan(at + 12, length);
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + length)));
            at += 12 + length + 4;
            double wall = double.NaN;
            long step = 0;
            string? version = null, tag = null;
            float value = float.NaN;
            foreach (var (field, payload) in Fields(data.ToArray()))
            {
                switch (field)
                {
                    case 1: wall = BitConverter.Int64BitsToDouble((long)payload.Number); break;
                    case 2: step = (long)payload.Number; break;
                    case 3: version = Encoding.UTF8.GetString(payload.Bytes!); break;
                    case 5:
                        var summaryValue = Assert.Single(Fields(payload.Bytes!)).Payload.Bytes!;
                        foreach (var (f, p) in Fields(summaryValue))
                        {
                            if (f == 1) tag = Encoding.UTF8.GetString(p.Bytes!);
                            if (f == 2) value = BitConverter.Int32BitsToSingle((int)p.Number);
                        }
                        break;
                }
            }
            events.Add(new Event(wall, step, version, tag, value));
        }
        return events;
    }

    private static List<(int Field, (ulong Number, byte[]? Bytes) Payload)> Fields(byte[] message)
    {
        var fields = new List<(int, (ulong, byte[]?))>();
        int at = 0;
        while (at < message.Length)
        {
            ulong key = Varint(message, ref at);
            int field = (int)(key >> 3);
            switch (key & 7)
            {
                case 0: fields.Add((field, (Varint(message, ref at), null))); break;
                case 1: fields.Add((field, (BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(at)), null))); at += 8; break;
                case 5: fields.Add((field, (BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(at)), null))); at += 4; break;
                case 2:
                    int n = (int)Varint(message, ref at);
                    fields.Add((field, (0, message[at..(at + n)])));
                    at += n;
                    break;
                default: throw new InvalidDataException($"wire type {key & 7}");
            }
        }
        return fields;
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return value;
        }
    }

    /// <summary>CRC-32C bit by bit (reflected polynomial 0x82F63B78), masked as TFRecord does.</summary>
    private static uint Masked(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        crc = ~crc;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }
}
