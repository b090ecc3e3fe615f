using System.Runtime.InteropServices;

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
        if (ranks == 1) return (Alone(local, sum, precision), 0);
        var state = new RingArithmetic(local, local.Float64 ? RingElement.Float64 : RingElement.Float32, precision, sum, pieceElements);
        var pass = new Pass(bucket, local.Count, rank, ranks, pieceElements, link);
        long nonFinite = await ReduceScatterAsync(pass, state, cancel);
        await AllGatherAsync(pass, state, cancel);
        return (nonFinite, pass.Sent);
    }

    /// <summary>A ring of one: the sum is this worker's values (rounded to bfloat16 and back with that precision).</summary>
    private static long Alone(GradientBytes local, Memory<byte> sum, ReducePrecision precision)
    {
        var only = local.ToFloat32();
        if (precision == ReducePrecision.Bfloat16)
            return RingElements.WidenBfloat16(RingElements.Bfloat16Bytes(MemoryMarshal.Cast<byte, float>(only)), MemoryMarshal.Cast<byte, float>(sum.Span));
        only.CopyTo(sum);
        return GradientSum.CountNonFinite(only);
    }

    /// <summary>One bucket's pass: where this worker sits in the ring, the link, and the bytes it sent.</summary>
    private sealed class Pass(int bucket, long count, int rank, int ranks, int pieceElements, IRingLink link)
    {
        public int Bucket => bucket;

        public int Rank => rank;

        public int Ranks => ranks;

        public IRingLink Link => link;

        public long Sent { get; private set; }

        public (long Start, int Count) Segment(int segment) => RingAllReduce.Segment(count, ranks, segment);

        public int Pieces(int segmentCount) => RingAllReduce.Pieces(segmentCount, pieceElements);

        public void Send(RingPiece piece)
        {
            Sent += piece.Data.Length;
            link.Send(piece);
        }
    }

    /// <summary>Reduce-scatter: this worker's own segment goes first; every segment received is added to and passed on,
    /// and the one completed at the last hop is rounded and starts the all-gather. Returns its non-finite values.</summary>
    private static async Task<long> ReduceScatterAsync(Pass pass, RingArithmetic state, CancellationToken cancel)
    {
        // hop 0: this worker's own segment, in the precision the first hop travels in
        var (firstStart, firstCount) = pass.Segment(pass.Rank);
        for (int p = 0; p < pass.Pieces(firstCount); p++)
        {
            var (start, n) = state.Piece(firstStart, firstCount, p);
            pass.Send(new RingPiece(pass.Bucket, 0, pass.Rank, p, state.FirstHop, state.Encode(start, n)));
        }
        long nonFinite = 0;
        for (int hop = 1; hop < pass.Ranks; hop++)
        {
            int segment = Mod(pass.Rank - hop, pass.Ranks);
            var (segmentStart, segmentCount) = pass.Segment(segment);
            bool last = hop == pass.Ranks - 1;
            for (int p = 0; p < pass.Pieces(segmentCount); p++)
            {
                var (start, n) = state.Piece(segmentStart, segmentCount, p);
                var incoming = await Receive(pass.Link, pass.Bucket, 0, segment, p, n, hop == 1 ? state.FirstHopAccepts : [state.Partial], cancel);
                if (!last)
                {
                    pass.Send(new RingPiece(pass.Bucket, 0, segment, p, state.Partial, state.Add(incoming, start, n)));
                    continue;
                }
                nonFinite += state.Complete(incoming, start, n, out var final);
                pass.Send(new RingPiece(pass.Bucket, 1, segment, p, state.Result, final)); // all-gather, hop 0: the segment this worker completed
            }
        }
        return nonFinite;
    }

    /// <summary>All-gather: every completed segment travels N-1 hops unchanged into every worker's sum.</summary>
    private static async Task AllGatherAsync(Pass pass, RingArithmetic state, CancellationToken cancel)
    {
        for (int hop = 1; hop < pass.Ranks; hop++)
        {
            int segment = Mod(pass.Rank + 1 - hop, pass.Ranks);
            var (segmentStart, segmentCount) = pass.Segment(segment);
            for (int p = 0; p < pass.Pieces(segmentCount); p++)
            {
                var (start, n) = state.Piece(segmentStart, segmentCount, p);
                var incoming = await Receive(pass.Link, pass.Bucket, 1, segment, p, n, [state.Result], cancel);
                state.Store(incoming, start, n);
                if (hop < pass.Ranks - 1) pass.Send(incoming);
            }
        }
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

    /// <summary>float32 to bfloat16, round to nearest even (NaN stays NaN).</summary>
    public static ushort ToBfloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    public static float FromBfloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);
}
