using Google.Protobuf;

namespace SimClr.Protocol;

/// <summary>
/// Tensors to and from streams of <see cref="TensorChunk"/>: at most <see cref="WireLimits.ChunkBytes"/> of data per
/// chunk, the header in chunk 0, and every defect of an incoming stream reported as a <see cref="ProtocolViolation"/>
/// before any of its bytes is used.
/// </summary>
public static class TensorChunks
{
    public static int ElementSize(DType dtype) => dtype switch
    {
        DType.Uint8 => 1,
        DType.Float32 => 4,
        DType.Bfloat16 => 2,
        DType.Int64 => 8,
        DType.Float64 => 8,
        _ => throw new ProtocolViolation($"dtype {dtype} is not one this protocol carries"),
    };

    /// <summary>Splits a tensor's bytes into chunks. The data is wrapped, not copied: it must not change until sent.</summary>
    public static IEnumerable<TensorChunk> Split(string name, DType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> bytes, int chunkBytes = WireLimits.ChunkBytes)
    {
        long expected = ExpectedBytes(dtype, shape);
        if (bytes.Length != expected) throw new ArgumentException($"{name}: {bytes.Length} bytes for shape [{string.Join(", ", shape)}] of {dtype} ({expected} expected)");
        if (chunkBytes < 1 || chunkBytes > WireLimits.ChunkBytes) throw new ArgumentOutOfRangeException(nameof(chunkBytes));
        uint chunks = (uint)Math.Max(1, (bytes.Length + chunkBytes - 1) / chunkBytes);
        for (uint i = 0; i < chunks; i++)
        {
            int start = (int)(i * (long)chunkBytes);
            var chunk = new TensorChunk { Index = i, Data = UnsafeByteOperations.UnsafeWrap(bytes.Slice(start, Math.Min(chunkBytes, bytes.Length - start))) };
            if (i == 0)
            {
                chunk.Header = new TensorHeader { Name = name, Dtype = dtype, Chunks = chunks };
                chunk.Header.Shape.AddRange(shape);
            }
            yield return chunk;
        }
    }

    private static long ExpectedBytes(DType dtype, IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ProtocolViolation($"negative dimension {d}");
            count = checked(count * d);
        }
        return checked(count * ElementSize(dtype));
    }

    /// <summary>Reads a stream that carries exactly one tensor (either side of a call); anything else is a violation.
    /// <paramref name="check"/>: as <see cref="Assembler"/>'s.</summary>
    public static async Task<Received> ReadOneAsync(Grpc.Core.IAsyncStreamReader<TensorChunk> stream, CancellationToken cancel = default, Action<TensorHeader, long>? check = null)
    {
        var assembler = new Assembler(check: check);
        Received? received = null;
        while (await stream.MoveNext(cancel))
        {
            if (received is not null) throw new ProtocolViolation("more than one tensor where one was expected");
            received = assembler.Add(stream.Current);
        }
        assembler.Complete();
        return received ?? throw new ProtocolViolation("no tensor received");
    }

    /// <summary>A validated tensor that arrived in chunks.</summary>
    public sealed record Received(string Name, DType DType, long[] Shape, byte[] Data);

    /// <summary>
    /// Reassembles one tensor at a time from chunks in arrival order. <see cref="Add"/> returns the tensor when its
    /// last chunk arrives, null before; any chunk out of order, without a header when one is due, beyond the
    /// declared count or size, or with a declared shape over the limits is a <see cref="ProtocolViolation"/>.
    /// <paramref name="check"/>, when given, sees each tensor's header and byte count before anything is allocated for
    /// it, and refuses it by throwing.
    /// </summary>
    public sealed class Assembler(long maxTensorBytes = WireLimits.MaxTensorBytes, Action<TensorHeader, long>? check = null)
    {
        private TensorHeader? _header;
        private byte[]? _buffer;
        private long _filled;
        private uint _next;

        public bool InProgress => _header is not null;

        public Received? Add(TensorChunk chunk)
        {
            if (_header is null)
            {
                if (chunk.Header is null) throw new ProtocolViolation($"chunk {chunk.Index} arrived without a tensor header (chunk 0 must carry it)");
                if (chunk.Index != 0) throw new ProtocolViolation($"tensor '{chunk.Header.Name}' starts at chunk {chunk.Index}, not 0");
                var h = chunk.Header;
                if (h.Chunks < 1) throw new ProtocolViolation($"tensor '{h.Name}' declares {h.Chunks} chunks");
                if (h.Shape.Count > WireLimits.MaxDimensions) throw new ProtocolViolation($"tensor '{h.Name}' has {h.Shape.Count} dimensions (at most {WireLimits.MaxDimensions})");
                long bytes;
                try
                {
                    bytes = ExpectedBytes(h.Dtype, h.Shape);
                }
                catch (OverflowException)
                {
                    throw new ProtocolViolation($"tensor '{h.Name}' declares a shape whose size overflows");
                }
                if (bytes > maxTensorBytes) throw new ProtocolViolation($"tensor '{h.Name}' declares {bytes} bytes, over the limit of {maxTensorBytes}");
                if ((bytes + WireLimits.ChunkBytes - 1) / WireLimits.ChunkBytes > h.Chunks || (bytes > 0 && h.Chunks > bytes))
                    throw new ProtocolViolation($"tensor '{h.Name}' declares {h.Chunks} chunks for {bytes} bytes");
                check?.Invoke(h, bytes);
                _header = h;
                _buffer = new byte[bytes];
                _filled = 0;
                _next = 0;
            }
            else if (chunk.Header is not null)
            {
                throw new ProtocolViolation($"a new tensor header ('{chunk.Header.Name}') arrived before tensor '{_header.Name}' was complete");
            }
            if (chunk.Index != _next) throw new ProtocolViolation($"tensor '{_header.Name}': chunk {chunk.Index} arrived where chunk {_next} was due");
            if (chunk.Data.Length > WireLimits.ChunkBytes) throw new ProtocolViolation($"tensor '{_header.Name}': chunk {chunk.Index} holds {chunk.Data.Length} bytes (at most {WireLimits.ChunkBytes})");
            if (_filled + chunk.Data.Length > _buffer!.Length)
                throw new ProtocolViolation($"tensor '{_header.Name}': chunk {chunk.Index} goes past the {_buffer.Length} bytes its shape declares");
            chunk.Data.Span.CopyTo(_buffer.AsSpan((int)_filled));
            _filled += chunk.Data.Length;
            _next++;
            if (_next < _header.Chunks) return null;
            if (_filled != _buffer.Length)
                throw new ProtocolViolation($"tensor '{_header.Name}': {_filled} bytes in {_header.Chunks} chunks, its shape declares {_buffer.Length}");
            var done = new Received(_header.Name, _header.Dtype, _header.Shape.ToArray(), _buffer);
            _header = null;
            _buffer = null;
            return done;
        }

        /// <summary>Call when the stream ends: a tensor still incomplete is a violation.</summary>
        public void Complete()
        {
            if (_header is not null) throw new ProtocolViolation($"the stream ended inside tensor '{_header.Name}' ({_next} of {_header.Chunks} chunks)");
        }
    }
}
