using System.Numerics;
using System.Runtime.InteropServices;
using SimClr.Core.Config;

namespace SimClr.Core.Collectives;

/// <summary>
/// Bandwidth-optimal ring all-reduce (Patarasuk and Yuan 2009; what NCCL and Horovod run), the worker's side: every
/// worker sends and receives 2(N-1)/N of the gradient, whatever N is, and the coordinator moves none of it.
///
/// The flat gradient is split into N segments, each into pieces. Reduce-scatter: worker r sends its segment r to r+1;
/// a worker that receives a piece adds its own values and passes it on, so after N-1 hops worker r holds the complete
/// sum of segment r+1 (added up in the order r+1, r+2, ..., r). It rounds that to float32 once and starts the
/// all-gather, in which each completed segment travels N-1 hops unchanged. Pieces move as soon as they are ready, so
/// every link is busy at once (pipelining) and a piece's latency is paid once, not once per hop.
///
/// Precision (<see cref="ReducePrecision"/>): exact partial sums travel as float64 (the first hop in the sender's own
/// precision, so 2 workers send float32): float32 values, or exact float64 sums of them, add up without rounding in
/// float64, so the result has the same bits as <see cref="GradientSum.Sum"/>'s and does not depend on the ring's
/// order or size; a run that loses a worker goes on bit-identical. Float32 sends 4-byte partials (fewer bytes for
/// N > 2, rounding that depends on the ring); bfloat16 halves the bytes again and is lossy (off by default).
/// </summary>
public static class RingAllReduce
{
    /// <summary>Values per piece by default: 1 MiB of float32.</summary>
    public const int DefaultPieceElements = 256 * 1024;

    /// <summary>4 MiB of float64: a piece fits in one gRPC message.</summary>
    public const int MaxPieceElements = 512 * 1024;

    public static int Size(RingElement element) => element switch
    {
        RingElement.Float32 => 4,
        RingElement.Float64 => 8,
        RingElement.Bfloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(element)),
    };

    /// <summary>Segment <paramref name="segment"/> of <paramref name="ranks"/> over <paramref name="count"/> values: near-equal, in order.</summary>
    public static (long Start, int Count) Segment(long count, int ranks, int segment)
    {
        long start = count * segment / ranks;
        return (start, checked((int)((count * (segment + 1) / ranks) - start)));
    }

    /// <summary>Pieces of a segment of <paramref name="count"/> values.</summary>
    public static int Pieces(int count, int pieceElements) => (count + pieceElements - 1) / pieceElements;

    /// <summary>Bytes one worker sends in a ring of <paramref name="ranks"/> over <paramref name="count"/> values (all
    /// local gradients in <paramref name="local"/>): what the benchmark compares with the ring bound 2(N-1)/N x 4 bytes.</summary>
    public static long BytesPerWorker(long count, int ranks, ReducePrecision precision, RingElement local)
    {
        if (ranks == 1) return 0;
        double segment = (double)count / ranks;
        double first = segment * (precision switch { ReducePrecision.Exact => Size(local), ReducePrecision.Float32 => 4, _ => 2 });
        double relays = segment * (ranks - 2) * (precision switch { ReducePrecision.Exact => 8, ReducePrecision.Float32 => 4, _ => 2 });
        double gather = segment * (ranks - 1) * (precision == ReducePrecision.Bfloat16 ? 2 : 4);
        return (long)(first + relays + gather);
    }

    /// <summary>Runs this worker's part of the ring over <paramref name="link"/>; every worker of the ring must call it with
    /// the same rank count, precision, piece size and gradient length, each with its own rank.</summary>
    public static Task<RingResult> RunAsync(GradientBytes local, int rank, int ranks, ReducePrecision precision, IRingLink link,
        int pieceElements = DefaultPieceElements, CancellationToken cancel = default) =>
        RunAsync([new RingBucket(0, local.Count)], (_, _) => ValueTask.FromResult(local), rank, ranks, precision, link, pieceElements, cancel);

    /// <summary>
    /// The ring over a gradient in buckets (DDP's overlap of reduction with backward): bucket after bucket, in the
    /// order given, each summed by its own ring pass over the same link as soon as <paramref name="local"/> hands over
    /// this worker's values for it (the bucket's local gradient, its <see cref="RingBucket.Count"/> values), so the
    /// first buckets travel while the worker is still computing the later ones. The buckets must tile the gradient;
    /// every worker must pass the same ones. The sum has the bits of one pass over the whole gradient: each value is
    /// summed on its own, whatever segment it falls in (exact), or to within the same rounding (float32, bfloat16).
    /// </summary>
    public static async Task<RingResult> RunAsync(IReadOnlyList<RingBucket> buckets, Func<int, CancellationToken, ValueTask<GradientBytes>> local,
        int rank, int ranks, ReducePrecision precision, IRingLink link, int pieceElements = DefaultPieceElements, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        if (rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of {ranks}");
        if (pieceElements < 1 || pieceElements > MaxPieceElements) throw new ArgumentOutOfRangeException(nameof(pieceElements));
        long count = 0;
        foreach (var bucket in buckets.OrderBy(b => b.Offset))
        {
            if (bucket.Offset != count || bucket.Count < 0) throw new ArgumentException($"buckets [{string.Join(", ", buckets)}] do not tile the gradient", nameof(buckets));
            count += bucket.Count;
        }
        var sum = new byte[checked(count * 4)];
        long nonFinite = 0, sent = 0;
        for (int b = 0; b < buckets.Count; b++)
        {
            var values = await local(b, cancel);
            if (values.Count != buckets[b].Count) throw new ArgumentException($"bucket {b} has {buckets[b].Count} values; {values.Count} were given", nameof(local));
            var target = sum.AsMemory(checked((int)(buckets[b].Offset * 4)), checked((int)(buckets[b].Count * 4)));
            var (bad, bytes) = await RunBucketAsync(b, values, target, rank, ranks, precision, link, pieceElements, cancel);
            nonFinite += bad;
            sent += bytes;
        }
        return new RingResult(sum, nonFinite, sent);
    }

    /// <summary>One ring pass over one bucket: its sum into <paramref name="sum"/> (float32); the non-finite values of the
    /// segment this worker completed, and the bytes sent.</summary>
    private static async Task<(long NonFinite, long Sent)> RunBucketAsync(int bucket, GradientBytes local, Memory<byte> sum, int rank, int ranks,
        ReducePrecision precision, IRingLink link, int pieceElements, CancellationToken cancel)
    {
        long count = local.Count;
        if (ranks == 1)
        {
            var only = local.ToFloat32();
            long bad = GradientSum.CountNonFinite(only);
            if (precision == ReducePrecision.Bfloat16) bad = WidenBfloat16(Bfloat16Bytes(MemoryMarshal.Cast<byte, float>(only)), MemoryMarshal.Cast<byte, float>(sum.Span));
            else only.CopyTo(sum);
            return (bad, 0);
        }
        var own = local.Float64 ? RingElement.Float64 : RingElement.Float32;
        var state = new State(local, own, precision, sum, pieceElements);
        long sent = 0;
        void Send(RingPiece piece)
        {
            sent += piece.Data.Length;
            link.Send(piece);
        }

        // reduce-scatter, hop 0: this worker's own segment, in the precision the first hop travels in
        int first = rank;
        var (firstStart, firstCount) = Segment(count, ranks, first);
        for (int p = 0; p < Pieces(firstCount, pieceElements); p++)
        {
            var (start, n) = state.Piece(firstStart, firstCount, p);
            Send(new RingPiece(bucket, 0, first, p, state.FirstHop, state.Encode(start, n)));
        }
        long nonFinite = 0;
        for (int hop = 1; hop < ranks; hop++)
        {
            int segment = Mod(rank - hop, ranks);
            var (segmentStart, segmentCount) = Segment(count, ranks, segment);
            bool last = hop == ranks - 1;
            for (int p = 0; p < Pieces(segmentCount, pieceElements); p++)
            {
                var (start, n) = state.Piece(segmentStart, segmentCount, p);
                var incoming = await Receive(link, bucket, 0, segment, p, n, hop == 1 ? state.FirstHopAccepts : [state.Partial], cancel);
                if (!last)
                {
                    Send(new RingPiece(bucket, 0, segment, p, state.Partial, state.Add(incoming, start, n)));
                    continue;
                }
                nonFinite += state.Complete(incoming, start, n, out var final);
                Send(new RingPiece(bucket, 1, segment, p, state.Result, final)); // all-gather, hop 0: the segment this worker completed
            }
        }
        for (int hop = 1; hop < ranks; hop++)
        {
            int segment = Mod(rank + 1 - hop, ranks);
            var (segmentStart, segmentCount) = Segment(count, ranks, segment);
            for (int p = 0; p < Pieces(segmentCount, pieceElements); p++)
            {
                var (start, n) = state.Piece(segmentStart, segmentCount, p);
                var incoming = await Receive(link, bucket, 1, segment, p, n, [state.Result], cancel);
                state.Store(incoming, start, n);
                if (hop < ranks - 1) Send(incoming);
            }
        }
        return (nonFinite, sent);
    }

    private static int Mod(int a, int n) => ((a % n) + n) % n;

    private static async Task<RingPiece> Receive(IRingLink link, int bucket, int phase, int segment, int piece, int count, RingElement[] accepted, CancellationToken cancel)
    {
        var incoming = await link.ReceiveAsync(cancel);
        if (incoming.Bucket != bucket || incoming.Phase != phase || incoming.Segment != segment || incoming.Piece != piece || !accepted.Contains(incoming.Element)
            || incoming.Data.Length != (long)count * Size(incoming.Element))
        {
            throw new RingBrokenException($"the previous worker sent {incoming.Bucket}/{incoming.Phase}/{incoming.Segment}/{incoming.Piece} ({incoming.Data.Length} bytes of "
                + $"{incoming.Element}); expected {new RingPiece(bucket, phase, segment, piece, accepted[0], default)} with {count} values as {string.Join(" or ", accepted)}");
        }
        return incoming;
    }

    /// <summary>bfloat16 values widened into <paramref name="target"/> (float32), counting non-finite ones.</summary>
    private static long WidenBfloat16(byte[] bfloat16, Span<float> target)
    {
        Load(bfloat16, RingElement.Bfloat16, target, add: false);
        return GradientSum.CountNonFinite(MemoryMarshal.AsBytes(target));
    }

    private static byte[] Bfloat16Bytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 2];
        var halves = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (int i = 0; i < values.Length; i++) halves[i] = ToBfloat16(values[i]);
        return bytes;
    }

    /// <summary>Values stored as <paramref name="element"/> into <paramref name="into"/> (float64, or float32 rounding to
    /// nearest), or added to what it holds: the one conversion the ring's arithmetic uses.</summary>
    private static void Load<T>(ReadOnlySpan<byte> bytes, RingElement element, Span<T> into, bool add)
        where T : INumberBase<T>
    {
        switch (element)
        {
            case RingElement.Float32:
                Load(MemoryMarshal.Cast<byte, float>(bytes), into, add);
                break;
            case RingElement.Float64:
                Load(MemoryMarshal.Cast<byte, double>(bytes), into, add);
                break;
            default:
                var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < into.Length; i++)
                {
                    var value = T.CreateTruncating(FromBfloat16(halves[i]));
                    into[i] = add ? into[i] + value : value;
                }
                break;
        }
    }

    private static void Load<TFrom, T>(ReadOnlySpan<TFrom> from, Span<T> into, bool add)
        where TFrom : INumberBase<TFrom>
        where T : INumberBase<T>
    {
        if (add)
        {
            for (int i = 0; i < into.Length; i++) into[i] += T.CreateTruncating(from[i]);
        }
        else
        {
            for (int i = 0; i < into.Length; i++) into[i] = T.CreateTruncating(from[i]);
        }
    }

    /// <summary>float32 to bfloat16, round to nearest even (NaN stays NaN).</summary>
    public static ushort ToBfloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    public static float FromBfloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>The arithmetic of one worker's ring: its local gradient, the sum being filled in, and the precision.</summary>
    private sealed class State(GradientBytes local, RingElement own, ReducePrecision precision, Memory<byte> sum, int pieceElements)
    {
        /// <summary>What the first reduce-scatter hop sends: exact sends the local values as they are.</summary>
        public RingElement FirstHop { get; } = precision switch
        {
            ReducePrecision.Exact => own,
            ReducePrecision.Float32 => RingElement.Float32,
            _ => RingElement.Bfloat16,
        };

        /// <summary>What a first hop may arrive as (the previous worker's local precision may differ from this one's).</summary>
        public RingElement[] FirstHopAccepts { get; } = precision == ReducePrecision.Exact ? [RingElement.Float32, RingElement.Float64] : [precision == ReducePrecision.Float32 ? RingElement.Float32 : RingElement.Bfloat16];

        /// <summary>What later reduce-scatter hops send.</summary>
        public RingElement Partial { get; } = precision switch
        {
            ReducePrecision.Exact => RingElement.Float64,
            ReducePrecision.Float32 => RingElement.Float32,
            _ => RingElement.Bfloat16,
        };

        /// <summary>What the all-gather sends.</summary>
        public RingElement Result { get; } = precision == ReducePrecision.Bfloat16 ? RingElement.Bfloat16 : RingElement.Float32;

        public (long Start, int Count) Piece(long segmentStart, int segmentCount, int piece)
        {
            int offset = piece * pieceElements;
            return (segmentStart + offset, Math.Min(pieceElements, segmentCount - offset));
        }

        private ReadOnlySpan<byte> Own(long start, int n) => local.Data.AsSpan(checked((int)(start * Size(own))), n * Size(own));

        /// <summary>This worker's values [start, start + n) as the first hop sends them (no copy when they already are).</summary>
        public ReadOnlyMemory<byte> Encode(long start, int n)
        {
            if (FirstHop == own) return local.Data.AsMemory(checked((int)(start * Size(own))), n * Size(own));
            if (FirstHop == RingElement.Float32)
            {
                var bytes = new byte[n * 4];
                Load(Own(start, n), own, MemoryMarshal.Cast<byte, float>(bytes.AsSpan()), add: false);
                return bytes;
            }
            var values = new float[n];
            Load(Own(start, n), own, values.AsSpan(), add: false);
            return Bfloat16Bytes(values);
        }

        /// <summary>The incoming partial sum plus this worker's values [start, start + n), into <paramref name="into"/>:
        /// float64 (exact) or float32.</summary>
        private void Accumulate<T>(RingPiece incoming, long start, int n, Span<T> into)
            where T : INumberBase<T>
        {
            Load(incoming.Data.Span, incoming.Element, into, add: false);
            Load(Own(start, n), own, into, add: true);
        }

        /// <summary>A partial sum to pass on: incoming plus this worker's values, as <see cref="Partial"/>.</summary>
        public ReadOnlyMemory<byte> Add(RingPiece incoming, long start, int n)
        {
            if (Partial == RingElement.Bfloat16)
            {
                var values = new float[n];
                Accumulate(incoming, start, n, values.AsSpan());
                return Bfloat16Bytes(values);
            }
            var bytes = new byte[n * Size(Partial)];
            if (Partial == RingElement.Float64) Accumulate(incoming, start, n, MemoryMarshal.Cast<byte, double>(bytes.AsSpan()));
            else Accumulate(incoming, start, n, MemoryMarshal.Cast<byte, float>(bytes.AsSpan()));
            return bytes;
        }

        private double[]? _wide; // exact: one piece's float64 sum before it is rounded, reused piece after piece

        /// <summary>The last hop: the complete sum, rounded once into the result; returns its non-finite count and the bytes to gather.</summary>
        public long Complete(RingPiece incoming, long start, int n, out ReadOnlyMemory<byte> final)
        {
            var target = MemoryMarshal.Cast<byte, float>(sum.Span.Slice(checked((int)(start * 4)), n * 4));
            final = sum.Slice(checked((int)(start * 4)), n * 4);
            if (precision == ReducePrecision.Exact)
            {
                var wide = (_wide ??= new double[pieceElements]).AsSpan(0, n);
                Accumulate(incoming, start, n, wide);
                return GradientBytes.RoundInto(wide, target);
            }
            Accumulate(incoming, start, n, target);
            if (precision == ReducePrecision.Float32) return GradientSum.CountNonFinite(MemoryMarshal.AsBytes(target));
            var halves = Bfloat16Bytes(target);
            final = halves;
            return WidenBfloat16(halves, target);
        }

        /// <summary>An all-gathered piece of the result into the sum.</summary>
        public void Store(RingPiece incoming, long start, int n) =>
            Load(incoming.Data.Span, incoming.Element, MemoryMarshal.Cast<byte, float>(sum.Span.Slice(checked((int)(start * 4)), n * 4)), add: false);
    }
}
