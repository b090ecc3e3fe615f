using System.Threading.Channels;
using Grpc.Core;
using Grpc.Net.Client;
using SimClr.Core.Collectives;
using SimClr.Core.Replica;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Wire;
using Piece = SimClr.Core.Collectives.RingPiece;

namespace SimClr.Worker;

/// <summary>
/// A worker's side of the ring all-reduce (<see cref="RingAllReduce"/>) over gRPC: one Peer.Ring call streams this
/// worker's pieces to the next worker, and the previous worker's call (<see cref="PeerService"/>) fills this worker's
/// inbox for the ring. Either side may come first (the previous worker may finish its backward earlier), so an inbox is
/// made by whoever asks first; inboxes are bounded (flow control reaches the sender) and so is their number.
/// </summary>
public sealed class RingPeers(WorkerOptions options) : IDisposable
{
    /// <summary>Rings with an inbox at once: the current one, and pieces of a next attempt arriving early.</summary>
    public const int MaxRings = 4;

    /// <summary>Pieces an inbox holds before the sender waits (HTTP/2 flow control then holds the rest).</summary>
    public const int InboxPieces = 16;

    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, System.Threading.Channels.Channel<Piece>> _inboxes = [];
    private readonly Dictionary<string, GrpcChannel> _channels = [];
    private readonly System.Security.Cryptography.X509Certificates.X509Certificate2? _trusted =
        options.TlsCertificatePath is { } path ? Tls.LoadTrusted(path) : null; // peers share the run's certificate or CA
    private readonly Metadata? _headers = options.Token is { } token ? new Metadata { { RunToken.Header, RunToken.BearerValue(token) } } : null;

    /// <summary>The inbox of ring <paramref name="id"/>, made when first asked for.</summary>
    internal System.Threading.Channels.Channel<Piece> Inbox(ulong id)
    {
        lock (_gate)
        {
            if (_inboxes.TryGetValue(id, out var inbox)) return inbox;
            if (_inboxes.Count >= MaxRings)
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"{MaxRings} rings are open on this worker; ring {id:x} is refused"));
            inbox = System.Threading.Channels.Channel.CreateBounded<Piece>(new BoundedChannelOptions(InboxPieces) { SingleReader = true, SingleWriter = true });
            _inboxes[id] = inbox;
            return inbox;
        }
    }

    /// <summary>Drops ring <paramref name="id"/>'s inbox (a benchmark's stream that nobody else reads).</summary>
    internal void Forget(ulong id) => Drop(other => other == id, "forgotten");

    private void Drop(Func<ulong, bool> which, string why)
    {
        lock (_gate)
        {
            foreach (ulong id in _inboxes.Keys.Where(which).ToList())
            {
                _inboxes[id].Writer.TryComplete(new RingBrokenException(why));
                _inboxes.Remove(id);
            }
        }
    }

    /// <summary>Takes part in <paramref name="spec"/>'s ring with this worker's local gradient; every other ring is abandoned.</summary>
    internal Task<RingResult> AllReduceAsync(RingSpec spec, GradientBytes local, CancellationToken cancel) =>
        AllReduceAsync(spec, [new RingBucket(0, local.Count)], (_, _) => ValueTask.FromResult(local), cancel);

    /// <summary>Takes part in <paramref name="spec"/>'s ring bucket after bucket (<see cref="RingAllReduce"/>), each as soon
    /// as <paramref name="local"/> hands over this worker's values for it; every other ring is abandoned.</summary>
    private async Task<RingResult> AllReduceAsync(RingSpec spec, IReadOnlyList<RingBucket> buckets, Func<int, CancellationToken, ValueTask<GradientBytes>> local,
        CancellationToken cancel)
    {
        ulong id = spec.RingId;
        Drop(other => other != id, "a newer ring started on this worker");
        int ranks = spec.Peers.Count;
        var precision = WireMapping.ToCore(spec.Precision) ?? throw new ArgumentOutOfRangeException(nameof(spec), spec.Precision, "precision");
        int pieces = spec.PieceElements == 0 ? RingAllReduce.DefaultPieceElements : (int)spec.PieceElements;
        if (ranks == 1) return await RingAllReduce.RunAsync(buckets, local, 0, 1, precision, new Link(null!, null!), pieces, cancel);

        var inbox = Inbox(id);
        string next = spec.Peers[(int)((spec.Rank + 1) % ranks)];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var outbox = System.Threading.Channels.Channel.CreateUnbounded<Piece>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var pump = Pump(id, next, outbox.Reader, stop);
        try
        {
            var result = await RingAllReduce.RunAsync(buckets, local, (int)spec.Rank, ranks, precision, new Link(inbox.Reader, outbox.Writer), pieces, stop.Token);
            outbox.Writer.TryComplete();
            await pump;
            return result;
        }
        catch (OperationCanceledException e) when (!cancel.IsCancellationRequested)
        {
            // only a failed send cancels the ring on its own (the pump cancels, then throws): that failure is the news
            throw await Failure(pump) as RingBrokenException ?? new RingBrokenException($"sending to the next worker ({next}) stopped", e);
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException or ChannelClosedException)
        {
            throw new RingBrokenException($"sending to the next worker ({next}) failed: {e.Message}", e);
        }
        finally
        {
            outbox.Writer.TryComplete();
            Drop(other => other == id, "the ring is over on this worker");
            if (!pump.IsCompleted) await stop.CancelAsync();
            _ = await Failure(pump); // reported above, or the ring failed for another reason
        }
    }

    /// <summary>
    /// Runs <paramref name="backward"/> with <paramref name="spec"/>'s ring alongside it: each bucket (whole stages, last
    /// first) is summed as soon as backward hands it to the callback it is given, while backward goes on with the earlier
    /// stages. Returns the ring's result with backward's times, whose ring time is what the ring took once backward had
    /// ended (what the step waits for). When backward fails, the ring is stopped and backward's error is thrown.
    /// </summary>
    public async Task<Timed<RingResult>> AllReduceAlongsideAsync(RingSpec spec, IReadOnlyList<RingBucket> buckets,
        Func<Action<int, GradientBytes>, Task<ReplicaTimes>> backward, CancellationToken cancel)
    {
        var finished = System.Threading.Channels.Channel.CreateUnbounded<GradientBytes>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var stopRing = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var reduce = AllReduceAsync(spec, buckets, (_, token) => finished.Reader.ReadAsync(token), stopRing.Token);
        ReplicaTimes times;
        try
        {
            times = await backward((_, bytes) => finished.Writer.TryWrite(bytes));
            finished.Writer.TryComplete(); // every bucket is in: a ring still waiting for one fails instead of hanging
        }
        catch
        {
            // this worker failed (its neighbours see the ring break): the backward's error is the news
            finished.Writer.TryComplete();
            await stopRing.CancelAsync();
            _ = await Failure(reduce); // the ring stopped because this worker did
            throw;
        }
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = await reduce;
        return new(result, times with { RingMs = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds });
    }

    /// <summary>What <paramref name="task"/> failed with, once it has ended (null when it did not fail).</summary>
    private static async Task<Exception?> Failure(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>Streams the outbox to the next worker's Peer.Ring; a failure cancels the ring.</summary>
    private async Task Pump(ulong id, string next, ChannelReader<Piece> outbox, CancellationTokenSource stop)
    {
        await Task.Yield();
        try
        {
            var client = new Peer.PeerClient(PeerChannel(next));
            using var call = client.Ring(_headers, cancellationToken: stop.Token);
            await foreach (var piece in outbox.ReadAllAsync(stop.Token))
            {
                await call.RequestStream.WriteAsync(WireMapping.ToWire(piece, id), stop.Token);
            }
            await call.RequestStream.CompleteAsync();
            await call.ResponseAsync;
        }
        catch (Exception e) when (!stop.IsCancellationRequested)
        {
            await stop.CancelAsync();
            throw new RingBrokenException($"sending to the next worker ({next}) failed: {(e is RpcException r ? $"{r.StatusCode}: {r.Status.Detail}" : e.Message)}", e);
        }
    }

    private GrpcChannel PeerChannel(string address)
    {
        lock (_gate)
        {
            if (_channels.TryGetValue(address, out var channel)) return channel;
            channel = WireChannel.Open(new Uri(address), _trusted);
            _channels[address] = channel;
            return channel;
        }
    }

    private sealed class Link(ChannelReader<Piece> inbox, ChannelWriter<Piece> outbox) : IRingLink
    {
        public void Send(Piece piece)
        {
            if (!outbox.TryWrite(piece)) throw new RingBrokenException("the link to the next worker is closed");
        }

        public async ValueTask<Piece> ReceiveAsync(CancellationToken cancel)
        {
            try
            {
                return await inbox.ReadAsync(cancel);
            }
            catch (ChannelClosedException e)
            {
                throw e.InnerException as RingBrokenException ?? new RingBrokenException("the previous worker ended its stream before the ring was done", e);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var channel in _channels.Values) channel.Dispose();
            _channels.Clear();
            foreach (var inbox in _inboxes.Values) inbox.Writer.TryComplete();
            _inboxes.Clear();
        }
    }
}
