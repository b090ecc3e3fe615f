using System.Threading.Channels;
using Grpc.Core;
using SimClr.Core.Collectives;
using SimClr.Protocol;
using SimClr.Wire;
using Piece = SimClr.Core.Collectives.RingPiece;
using WirePiece = SimClr.Protocol.RingPiece;

namespace SimClr.Worker;

/// <summary>The Peer service of protos/simclr.proto: the previous worker's ring pieces, checked, into this worker's inbox.</summary>
[BindServiceMethod(typeof(PeerService), nameof(Bind))]
public sealed class PeerService(RingPeers peers) : Peer.PeerBase
{
    /// <summary>gRPC's own binding, turned off: <see cref="UndecodableIsInvalid{TService}"/> binds the methods.</summary>
    public static void Bind(ServiceBinderBase binder, PeerService service)
    {
    }

    public override async Task<RingReply> Ring(IAsyncStreamReader<WirePiece> requestStream, ServerCallContext context)
    {
        System.Threading.Channels.Channel<Piece>? inbox = null;
        ulong id = 0;
        uint count = 0;
        try
        {
            await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
            {
                if (message.RingId == 0 || (id != 0 && message.RingId != id))
                    throw Invalid($"ring_id {message.RingId:x} (the call's ring is {id:x}; 0 is not an id)");
                if (message.Phase > 1) throw Invalid($"phase {message.Phase} (0 reduce-scatter, 1 all-gather)");
                var element = WireMapping.RingElementOf(message.Dtype) ?? throw Invalid($"dtype {message.Dtype}; ring pieces are float32, float64 or bfloat16");
                if (message.Data.Length % RingAllReduce.Size(element) != 0) throw Invalid($"{message.Data.Length} bytes of {message.Dtype}");
                if (inbox is null)
                {
                    id = message.RingId;
                    inbox = peers.Inbox(id);
                }
                await inbox.Writer.WriteAsync(WireMapping.ToCore(message), context.CancellationToken);
                count++;
            }
        }
        catch (ChannelClosedException)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"ring {id:x} is over on this worker"));
        }
        catch (Exception e)
        {
            // this worker's ring must not wait for pieces that will never come
            inbox?.Writer.TryComplete(new RingBrokenException($"the previous worker's stream broke: {(e is RpcException r ? r.Status.Detail : e.Message)}", e));
            throw;
        }
        return new RingReply { Pieces = count };
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, $"ring piece: {message}"));
}
