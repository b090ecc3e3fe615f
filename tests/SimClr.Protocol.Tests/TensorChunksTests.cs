using Google.Protobuf;

namespace SimClr.Protocol.Tests;

public class TensorChunksTests
{
    private static byte[] Bytes(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 31 % 251)).ToArray();

    private static TensorChunks.Received? Feed(TensorChunks.Assembler assembler, IEnumerable<TensorChunk> chunks)
    {
        TensorChunks.Received? last = null;
        foreach (var chunk in chunks)
        {
            // through the wire format, as gRPC would carry it
            last = assembler.Add(TensorChunk.Parser.ParseFrom(chunk.ToByteArray())) ?? last;
        }
        return last;
    }

    [Theory]
    [InlineData(0, 4)]
    [InlineData(1, 4)]
    [InlineData(10, 4)]
    [InlineData(12, 4)]
    [InlineData(13, 4)]
    public void Tensors_round_trip_through_chunks(int elements, int chunkBytes)
    {
        byte[] data = Bytes(elements * 4);
        var chunks = TensorChunks.Split("z", DType.Float32, [elements], data, chunkBytes).ToList();
        Assert.Equal(Math.Max(1, (data.Length + chunkBytes - 1) / chunkBytes), chunks.Count);
        Assert.All(chunks, c => Assert.True(c.Data.Length <= chunkBytes));
        Assert.NotNull(chunks[0].Header);
        Assert.All(chunks.Skip(1), c => Assert.Null(c.Header));
        var received = Feed(new TensorChunks.Assembler(), chunks);
        Assert.NotNull(received);
        Assert.Equal("z", received.Name);
        Assert.Equal([elements], received.Shape);
        Assert.Equal(data, received.Data);
    }

    [Fact]
    public void Default_chunks_are_at_most_4_MiB_and_several_tensors_follow_each_other()
    {
        byte[] big = Bytes(9 * 1024 * 1024 + 5);
        var chunks = TensorChunks.Split("images", DType.Uint8, [big.Length], big).Concat(TensorChunks.Split("labels", DType.Int64, [2], Bytes(16))).ToList();
        Assert.Equal(4, chunks.Count);
        Assert.All(chunks, c => Assert.True(c.Data.Length <= WireLimits.ChunkBytes));
        var assembler = new TensorChunks.Assembler();
        var received = chunks.Select(assembler.Add).Where(r => r is not null).ToList();
        Assert.Equal(["images", "labels"], received.Select(r => r!.Name));
        Assert.Equal(big, received[0]!.Data);
        assembler.Complete();
    }

    public static TheoryData<string, Func<List<TensorChunk>, List<TensorChunk>>, string> Malformed => new()
    {
        { "no header", c => c.Skip(1).ToList(), "without a tensor header" },
        { "out of order", c => [c[0], c[2], c[1]], "chunk 2 arrived where chunk 1 was due" },
        { "missing chunk", c => [c[0], c[1]], "the stream ended inside tensor 'z' (2 of 3 chunks)" },
        { "too long", c => [c[0], c[1], Extended(c[2], 9)], "goes past the 12 bytes its shape declares" },
        { "too short", c => [c[0], c[1], Truncated(c[2])], "11 bytes in 3 chunks, its shape declares 12" },
        { "second header inside", c => [c[0], WithHeader(c[1]), c[2]], "arrived before tensor 'z' was complete" },
        { "huge declared shape", c => [Declared(c[0], [1L << 40, 1L << 20])], "over the limit" },
        { "overflowing shape", c => [Declared(c[0], [long.MaxValue, 4])], "overflows" },
        { "negative dimension", c => [Declared(c[0], [-3])], "negative dimension" },
        { "zero chunks", c => [WithChunks(c[0], 0)], "declares 0 chunks" },
        { "unknown dtype", c => [WithDType(c[0], (DType)77)], "dtype 77" },
        { "too many dimensions", c => [Declared(c[0], [1, 1, 1, 1, 1, 1, 1, 1, 12])], "9 dimensions" },
    };

    private static TensorChunk Copy(TensorChunk c) => TensorChunk.Parser.ParseFrom(c.ToByteArray());

    private static TensorChunk Extended(TensorChunk c, int extra)
    {
        var x = Copy(c);
        x.Data = ByteString.CopyFrom([.. c.Data.ToByteArray(), .. new byte[extra]]);
        return x;
    }

    private static TensorChunk Truncated(TensorChunk c)
    {
        var x = Copy(c);
        x.Data = ByteString.CopyFrom(c.Data.ToByteArray()[..^1]);
        return x;
    }

    private static TensorChunk WithHeader(TensorChunk c)
    {
        var x = Copy(c);
        x.Header = new TensorHeader { Name = "other", Dtype = DType.Uint8, Chunks = 1 };
        return x;
    }

    private static TensorChunk Declared(TensorChunk c, long[] shape)
    {
        var x = Copy(c);
        x.Header.Shape.Clear();
        x.Header.Shape.AddRange(shape);
        return x;
    }

    private static TensorChunk WithChunks(TensorChunk c, uint chunks)
    {
        var x = Copy(c);
        x.Header.Chunks = chunks;
        return x;
    }

    private static TensorChunk WithDType(TensorChunk c, DType dtype)
    {
        var x = Copy(c);
        x.Header.Dtype = dtype;
        return x;
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_streams_are_violations_that_say_what_is_wrong(string what, Func<List<TensorChunk>, List<TensorChunk>> corrupt, string message)
    {
        var chunks = corrupt(TensorChunks.Split("z", DType.Float32, [3], Bytes(12), chunkBytes: 4).ToList());
        var assembler = new TensorChunks.Assembler();
        var e = Assert.Throws<ProtocolViolation>(() =>
        {
            foreach (var chunk in chunks) assembler.Add(chunk);
            assembler.Complete();
        });
        Assert.True(e.Message.Contains(message, StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    [Fact]
    public void Mutated_chunks_never_get_past_the_assembler_unnoticed()
    {
        var random = new Random(7);
        byte[] valid = TensorChunks.Split("z", DType.Float32, [2, 3], Bytes(24)).Single().ToByteArray();
        int violations = 0, parseErrors = 0, accepted = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            var bytes = (byte[])valid.Clone(); // a valid one-chunk tensor with one to three random bytes changed
            for (int k = random.Next(1, 4); k > 0; k--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            TensorChunk chunk;
            try
            {
                chunk = TensorChunk.Parser.ParseFrom(bytes);
            }
            catch (InvalidProtocolBufferException)
            {
                parseErrors++;
                continue;
            }
            try
            {
                var assembler = new TensorChunks.Assembler();
                var received = assembler.Add(chunk);
                assembler.Complete();
                // anything accepted must be internally consistent
                Assert.NotNull(received);
                Assert.Equal(received.Shape.Aggregate(1L, (a, b) => a * b) * TensorChunks.ElementSize(received.DType), received.Data.Length);
                accepted++;
            }
            catch (ProtocolViolation)
            {
                violations++;
            }
        }
        Assert.Equal(2000, violations + parseErrors + accepted);
        Assert.True(violations > 100, $"{violations} violations, {parseErrors} parse errors, {accepted} accepted");
    }
}
