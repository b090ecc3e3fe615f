using System.Diagnostics;
using Grpc.Net.Client;
using SimClr.Coordinator;
using SimClr.Wire;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Collectives;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Worker;
using ReducePrecision = SimClr.Core.Collectives.ReducePrecision;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// The workers of `simclr bench reduce`: worker servers in this process, each its own Kestrel and HTTP/2 connections,
/// and the measurements between them (a link alone, the ring's traffic alone, the ring, the star).
/// </summary>
internal sealed class ReduceRig : IAsyncDisposable
{
    private readonly List<WorkerHost> _hosts = [];
    private readonly List<GrpcChannel> _channels = [];
    private readonly byte[] _gradient;
    private readonly int _repeats;

    private ReduceRig(byte[] gradient, int repeats)
    {
        _gradient = gradient;
        _repeats = repeats;
    }

    private long GradientSize => _gradient.Length;

    private static int PieceBytes => RingAllReduce.DefaultPieceElements * 4;

    /// <summary><paramref name="workers"/> worker servers; <paramref name="gradient"/> is what they send, each measurement <paramref name="repeats"/> times after one to warm up.</summary>
    public static async Task<ReduceRig> StartAsync(int workers, byte[] gradient, int repeats)
    {
        var rig = new ReduceRig(gradient, repeats);
        try
        {
            for (int w = 0; w < workers; w++) rig._hosts.Add(await WorkerHost.StartAsync(new WorkerOptions { WorkerId = $"bench{w}" }));
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    /// <summary>The link: one gradient streamed to a worker over Peer.Ring, as the ring's pieces travel; returns its rate, GB/s.</summary>
    public async Task<double> MeasureLinkAsync(double memcpy)
    {
        var link = new List<double>();
        using (var channel = WireChannel.Open(_hosts[1].Address))
        {
            var client = new Peer.PeerClient(channel);
            for (int r = 0; r <= _repeats; r++)
            {
                double seconds = await PointToPoint(client, _hosts[1], _gradient, PieceBytes);
                if (r > 0) link.Add(seconds);
            }
        }
        var (linkSeconds, linkMin, linkMax) = Timings.Spread(link);
        double linkBandwidth = GradientSize / linkSeconds / 1e9;
        Console.WriteLine($"link: one gradient worker -> worker over loopback gRPC in {linkSeconds:F3} s (min {linkMin:F3}, max {linkMax:F3}): "
            + $"{linkBandwidth:F2} GB/s, {linkBandwidth / memcpy:P0} of memcpy");
        return linkBandwidth;
    }

    /// <summary>The ring between the first <paramref name="n"/> workers at each precision, next to its traffic alone and its bound.</summary>
    public async Task MeasureRingAsync(int n, IReadOnlyList<ReducePrecision> precisions, double linkBandwidth, Random random)
    {
        if (_channels.Count == 0) _channels.AddRange(_hosts.Select(h => WireChannel.Open(h.Address)));
        double rawSeconds = await MeasureTrafficAsync(n);
        var locals = Enumerable.Range(0, n).Select(_ =>
        {
            var values = new float[GradientSize / 4];
            for (long i = 0; i < values.LongLength; i++) values[i] = (float)(random.NextDouble() - 0.5) * 1e-3f;
            return new GradientBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), false);
        }).ToList();
        double bound = RingBound(n, linkBandwidth);
        Console.WriteLine($"N = {n}: ring bound 2(N-1)/N x size at the link's rate: {bound:F3} s ({2.0 * (n - 1) / n * GradientSize / 1e6:F0} MB per worker)");
        Console.WriteLine($"       (the links share this machine's cores: the ring's traffic alone takes {rawSeconds / bound:F2}x the bound)");
        foreach (var precision in precisions) await MeasurePrecisionAsync(n, precision, locals, bound, rawSeconds);
    }

    /// <summary>
    /// The ring's traffic alone, all links at once (each worker streams 2(N-1)/N x size to the next): what this machine's
    /// cores can move over gRPC when N links share them; the ring's own overhead is what it adds to this. Returns seconds.
    /// </summary>
    private async Task<double> MeasureTrafficAsync(int n)
    {
        long ringBytes = 2L * (n - 1) * GradientSize / n;
        var raw = new List<double>();
        for (int r = 0; r <= _repeats; r++)
        {
            long start = Stopwatch.GetTimestamp();
            await Task.WhenAll(Enumerable.Range(0, n).Select(w => Task.Run(() =>
                PointToPoint(new Peer.PeerClient(_channels[(w + 1) % n]), _hosts[(w + 1) % n], _gradient, PieceBytes, ringBytes))));
            if (r > 0) raw.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        var (rawSeconds, rawMin, rawMax) = Timings.Spread(raw);
        Console.WriteLine($"N = {n}: the ring's traffic alone, {n} links at once: {rawSeconds:F3} s (min {rawMin:F3}, max {rawMax:F3}), "
            + $"{n * ringBytes / rawSeconds / 1e9:F2} GB/s over all links");
        return rawSeconds;
    }

    private async Task MeasurePrecisionAsync(int n, ReducePrecision precision, List<GradientBytes> locals, double bound, double rawSeconds)
    {
        var times = new List<double>();
        long sent = 0;
        for (int r = 0; r <= _repeats; r++)
        {
            var plan = new RingPlan((ulong)Random.Shared.NextInt64(1, long.MaxValue), _hosts.Take(n).Select(h => h.Address.ToString()).ToList(),
                precision, RingAllReduce.DefaultPieceElements);
            long start = Stopwatch.GetTimestamp();
            var results = await Task.WhenAll(Enumerable.Range(0, n).Select(w =>
                Task.Run(() => _hosts[w].Ring.AllReduceAsync(WireMapping.ToWire(plan, w), locals[w], CancellationToken.None))));
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (results.Any(x => !x.Sum.AsSpan().SequenceEqual(results[0].Sum))) throw new InvalidOperationException("the workers' sums differ");
            sent = results.Max(x => x.BytesSent);
            if (r > 0) times.Add(seconds);
        }
        var (median, min, max) = Timings.Spread(times);
        Console.WriteLine($"  ring {precision,-8} {median:F3} s per reduction (min {min:F3}, max {max:F3}); each worker sends {sent / 1e6:F0} MB "
            + $"({sent / (double)GradientSize:F2} x the gradient), {sent / median / 1e9:F2} GB/s per worker; ring / bound = {median / bound:F2}x, "
            + $"ring / its traffic alone = {median / rawSeconds:F2}x; "
            + "coordinator: 0 MB");
    }

    /// <summary>The coordinator's star over the first <paramref name="n"/> workers: every worker's state here and back, scaled to one gradient.</summary>
    public async Task MeasureStarAsync(int n, RunConfig config, ImageDataSet train, double linkBandwidth)
    {
        IReadOnlyList<IReplicaEndpoint> endpoints = [];
        try
        {
            endpoints = await WorkerPool.JoinAsync(_hosts.Take(n).Select(h => h.Address).ToList(), config, train, TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60));
            var state = await endpoints[0].SaveStateAsync(CancellationToken.None);
            long stateBytes = state.Sum(t => (long)t.Data.Length);
            var totals = new List<double>();
            for (int r = 0; r <= _repeats; r++)
            {
                long start = Stopwatch.GetTimestamp();
                await Task.WhenAll(endpoints.Select(e => e.SaveStateAsync(CancellationToken.None))); // every worker -> here
                await Task.WhenAll(endpoints.Select(e => e.LoadStateAsync(state, CancellationToken.None))); // here -> every worker
                if (r > 0) totals.Add(Stopwatch.GetElapsedTime(start).TotalSeconds * GradientSize / stateBytes); // per gradient-sized transfer
            }
            var (median, min, max) = Timings.Spread(totals);
            double bound = RingBound(n, linkBandwidth);
            Console.WriteLine($"star over {n} workers: {median:F3} s per reduction (min {min:F3}, max {max:F3}); each worker moves "
                + $"{2 * GradientSize / 1e6:F0} MB, the coordinator {2.0 * n * GradientSize / 1e6:F0} MB; star / ring bound = {median / bound:F2}x");
        }
        finally
        {
            foreach (var e in endpoints) e.Dispose();
        }
    }

    /// <summary>Seconds the ring needs at the least: 2(N-1)/N x the gradient over a link of <paramref name="linkBandwidth"/> GB/s.</summary>
    private double RingBound(int n, double linkBandwidth) => 2.0 * (n - 1) / n * GradientSize / (linkBandwidth * 1e9);

    /// <summary>Seconds to stream <paramref name="bytes"/> (cycling through <paramref name="payload"/>) through <paramref name="client"/> to
    /// <paramref name="to"/>'s Peer.Ring in pieces, its inbox drained as the ring would.</summary>
    private static async Task<double> PointToPoint(Peer.PeerClient client, WorkerHost to, byte[] payload, int pieceBytes, long bytes = -1)
    {
        if (bytes < 0) bytes = payload.Length;
        ulong id = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        var inbox = to.Ring.Inbox(id);
        int pieces = (int)((bytes + pieceBytes - 1) / pieceBytes);
        var drain = Task.Run(async () =>
        {
            for (int p = 0; p < pieces; p++) await inbox.Reader.ReadAsync();
        });
        long start = Stopwatch.GetTimestamp();
        using var call = client.Ring();
        for (int p = 0; p < pieces; p++)
        {
            int offset = (int)((long)p * pieceBytes % payload.Length);
            await call.RequestStream.WriteAsync(new SimClr.Protocol.RingPiece
            {
                RingId = id,
                Piece = (uint)p,
                Dtype = DType.Float32,
                Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(payload.AsMemory(offset, (int)Math.Min(Math.Min(pieceBytes, payload.Length - offset), bytes - ((long)p * pieceBytes)))),
            });
        }
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;
        await drain;
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        to.Ring.Forget(id);
        return seconds;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _channels) c.Dispose();
        foreach (var h in _hosts) await h.DisposeAsync();
    }
}
