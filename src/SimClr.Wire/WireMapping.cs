using Google.Protobuf;
using Grpc.Core;
using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Protocol;
using CorePiece = SimClr.Core.Collectives.RingPiece;
using CorePrecision = SimClr.Core.Collectives.ReducePrecision;
using WirePiece = SimClr.Protocol.RingPiece;
using WirePrecision = SimClr.Protocol.ReducePrecision;
using CoreAgreement = SimClr.Core.Step.Agreement;
using WireAgreement = SimClr.Protocol.Agreement;

namespace SimClr.Wire;

/// <summary>
/// Every translation between protos/simclr.proto's messages and Core's types, for both ends of the wire (the
/// coordinator's endpoint and the worker's services). It only maps: what a message may hold is checked by the side that
/// receives it, with its own status and message, before it is mapped; a tensor of a dtype a Core type cannot hold is
/// refused here too (<see cref="ProtocolViolation"/>), so no bytes are ever read as something they are not.
/// </summary>
public static class WireMapping
{
    /// <summary>The header of a Forward call: the shard's step, epoch and rows (chunk sizes only when there are several).</summary>
    public static ShardHeader ToWire(ShardWork work)
    {
        var header = new ShardHeader { Step = work.Step, Epoch = work.Epoch };
        header.Indices.AddRange(work.Rows.Indices);
        header.Views.AddRange(work.Rows.Views);
        if (work.Rows.ChunkSizes.Length > 1) header.ChunkSizes.AddRange(work.Rows.ChunkSizes);
        header.SharedStorage = work.Images is null;
        return header;
    }

    /// <summary>A Forward call's shard: its header and its images (uint8 [n, C, H, W]), or none with shared storage.</summary>
    public static ShardWork ToCore(ShardHeader shard, TensorChunks.Received? images) =>
        new(shard.Step, shard.Epoch, new ShardRows([.. shard.Indices], [.. shard.Views], [], [.. shard.ChunkSizes]), images?.Shape ?? [], images?.Data);

    /// <summary>A float32 block (projections, dL/dz) as the chunks of tensor <paramref name="name"/>.</summary>
    public static IEnumerable<TensorChunk> Chunks(string name, FloatBlock block) => TensorChunks.Split(name, DType.Float32, block.Shape, block.Data);

    public static FloatBlock ToFloatBlock(TensorChunks.Received tensor) =>
        tensor.DType == DType.Float32 ? new FloatBlock(tensor.Shape, tensor.Data) : throw Unmapped(tensor, "float32");

    /// <summary>A flat gradient as the chunks of tensor <paramref name="name"/>: float32, or float64 when the replica summed several chunks.</summary>
    public static IEnumerable<TensorChunk> Chunks(string name, GradientBytes gradient) =>
        TensorChunks.Split(name, gradient.Float64 ? DType.Float64 : DType.Float32, [gradient.Count], gradient.Data);

    public static GradientBytes ToGradient(TensorChunks.Received tensor) =>
        tensor.DType is DType.Float32 or DType.Float64 ? new GradientBytes(tensor.Data, tensor.DType == DType.Float64) : throw Unmapped(tensor, "float32 or float64");

    /// <summary>The dtype a state tensor travels as: float32 for floating-point tensors, int64 for the rest.</summary>
    public static DType StateDType(bool isFloat) => isFloat ? DType.Float32 : DType.Int64;

    /// <summary>One tensor of a replica's state as its chunks (<see cref="StateDType"/>).</summary>
    public static IEnumerable<TensorChunk> Chunks(NamedBytes state) => TensorChunks.Split(state.Name, StateDType(state.IsFloat), state.Shape, state.Data);

    public static NamedBytes ToNamedBytes(TensorChunks.Received tensor) => tensor.DType switch
    {
        DType.Float32 => new NamedBytes(tensor.Name, true, tensor.Shape, tensor.Data),
        DType.Int64 => new NamedBytes(tensor.Name, false, tensor.Shape, tensor.Data),
        _ => throw Unmapped(tensor, "float32 or int64"),
    };

    /// <summary>The header of a BackwardReduce call: <paramref name="ring"/> for the worker at <paramref name="rank"/>.</summary>
    public static RingSpec ToWire(RingPlan ring, int rank)
    {
        var spec = new RingSpec
        {
            RingId = ring.Id,
            Rank = (uint)rank,
            Precision = ToWire(ring.Precision),
            PieceElements = (uint)ring.PieceElements,
            BucketBytes = (ulong)Math.Max(0, ring.BucketBytes),
        };
        spec.Peers.AddRange(ring.Peers);
        if (ring.Communicator is { } communicator)
        {
            spec.CommunicatorId = Google.Protobuf.ByteString.CopyFrom(communicator.UniqueId);
            spec.CommunicatorRanks = (uint)communicator.Ranks;
        }
        return spec;
    }

    /// <summary>The device communicator a BackwardReduce header names, or null for a ring over gRPC.</summary>
    public static CommunicatorPlan? CommunicatorOf(RingSpec ring) =>
        ring.CommunicatorId.IsEmpty ? null : new CommunicatorPlan(ring.CommunicatorId.ToByteArray(), (int)ring.CommunicatorRanks);

    public static WirePrecision ToWire(CorePrecision precision) => precision switch
    {
        CorePrecision.Float32 => WirePrecision.Float32,
        CorePrecision.Bfloat16 => WirePrecision.Bfloat16,
        _ => WirePrecision.Exact,
    };

    /// <summary>Null for a value that names no precision (unspecified, or unknown to this version).</summary>
    public static CorePrecision? ToCore(WirePrecision precision) => precision switch
    {
        WirePrecision.Exact => CorePrecision.Exact,
        WirePrecision.Float32 => CorePrecision.Float32,
        WirePrecision.Bfloat16 => CorePrecision.Bfloat16,
        _ => null,
    };

    /// <summary>A ring piece as it goes to the next worker. Its data is wrapped, not copied: the ring never changes a piece it sent.</summary>
    public static WirePiece ToWire(CorePiece piece, ulong ringId) => new()
    {
        RingId = ringId,
        Bucket = (uint)piece.Bucket,
        Phase = (uint)piece.Phase,
        Segment = (uint)piece.Segment,
        Piece = (uint)piece.Piece,
        Dtype = ToWire(piece.Element),
        Data = UnsafeByteOperations.UnsafeWrap(piece.Data),
    };

    /// <summary>A ring piece from the previous worker (positions beyond int's range are clamped: the ring then refuses them as out of place).</summary>
    public static CorePiece ToCore(WirePiece piece) => new(Clamp(piece.Bucket), Clamp(piece.Phase), Clamp(piece.Segment), Clamp(piece.Piece),
        RingElementOf(piece.Dtype) ?? throw new ProtocolViolation($"ring piece of dtype {piece.Dtype}"), piece.Data.Memory);

    public static DType ToWire(RingElement element) => element switch
    {
        RingElement.Float64 => DType.Float64,
        RingElement.Bfloat16 => DType.Bfloat16,
        _ => DType.Float32,
    };

    /// <summary>Null for a dtype ring pieces do not travel as.</summary>
    public static RingElement? RingElementOf(DType dtype) => dtype switch
    {
        DType.Float32 => RingElement.Float32,
        DType.Float64 => RingElement.Float64,
        DType.Bfloat16 => RingElement.Bfloat16,
        _ => null,
    };

    /// <summary>Adds the replica's own times in a call to its trailers (<see cref="StepTimesTrailer"/>).</summary>
    public static void AddTimes(Metadata trailers, ReplicaTimes times) => trailers.Add(StepTimesTrailer.Key, times.Format());

    /// <summary>What an ApplyStep's reply holds: the fingerprint, else the SHA-256 checksum (also when unspecified).</summary>
    public static CoreAgreement AgreementOf(WireAgreement agreement) => agreement == WireAgreement.Fingerprint ? CoreAgreement.Fingerprint : CoreAgreement.Full;

    /// <summary>The replica's own times in a finished call, from its trailers; none, or a malformed one, is
    /// <see cref="ReplicaTimes.None"/> (the call then counts as transfer).</summary>
    public static ReplicaTimes TimesOf(Metadata trailers) => ReplicaTimes.Parse(trailers.GetValue(StepTimesTrailer.Key)) ?? ReplicaTimes.None;

    private static int Clamp(uint value) => (int)Math.Min(value, int.MaxValue);

    private static ProtocolViolation Unmapped(TensorChunks.Received tensor, string expected) =>
        new($"tensor '{tensor.Name}' is {tensor.DType} [{string.Join(", ", tensor.Shape)}], where {expected} was expected");
}
