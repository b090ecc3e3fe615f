using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SimClr.Core.Runtime;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>Starts a worker's gRPC server (HTTP/2 over plain TCP on loopback by default) and its torch thread.</summary>
public sealed class WorkerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TorchThread _torch;

    private WorkerHost(WebApplication app, TorchThread torch, Uri address)
    {
        _app = app;
        _torch = torch;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>This worker's side of the ring all-reduce (benchmarks drive it directly).</summary>
    internal RingPeers Ring => _app.Services.GetRequiredService<RingPeers>();

    /// <summary>Signalled when the host is stopping (SIGINT/SIGTERM reach the host's console lifetime first).</summary>
    public CancellationToken Stopping => _app.Lifetime.ApplicationStopping;

    /// <param name="logging">Where the worker logs; null: the console, one line an entry.</param>
    public static async Task<WorkerHost> StartAsync(WorkerOptions options, Action<ILoggingBuilder>? logging = null)
    {
        if (!options.IsLoopback && options.Token is null)
            throw new ProtocolViolation($"listening on {options.Host} needs a run token (--token-file or {RunToken.EnvironmentVariable}): anyone who can reach the port could drive this worker");
        var certificate = options.TlsCertificatePath is { } cert ? Tls.LoadServerCertificate(cert, options.TlsKeyPath) : null;
        var torch = new TorchThread($"torch-{options.WorkerId}");
        var builder = WebApplication.CreateSlimBuilder();
        ConfigureLogging(builder.Logging, logging);
        var connections = new ConnectionGuard();
        builder.WebHost.ConfigureKestrel(kestrel => ConfigureKestrel(kestrel, options, connections, certificate));
        AddServices(builder.Services, options, torch, connections);
        var app = builder.Build();
        app.MapGrpcService<WorkerService>();
        app.MapGrpcService<PeerService>();
        app.MapGrpcHealthChecksService();
        await app.StartAsync();
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new WorkerHost(app, torch, new Uri(bound));
    }

    /// <summary>The worker's own lines; from gRPC and ASP.NET Core only warnings and errors.</summary>
    private static void ConfigureLogging(ILoggingBuilder logs, Action<ILoggingBuilder>? logging)
    {
        logs.ClearProviders();
        // the worker's own lines; from gRPC and ASP.NET Core only warnings and errors: they log every refused call at
        // Information, with its exception's stack (the worker logs each in one line)
        logs.AddFilter("Grpc", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning);
        if (logging is not null) logging(logs);
        else logs.AddSimpleConsole(console => // joins, loads and broken rings, one line each
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss ";
        });
    }

    /// <summary>HTTP/2 on the worker's address (TLS when it has a certificate), windows and limits for streamed tensors.</summary>
    private static void ConfigureKestrel(KestrelServerOptions kestrel, WorkerOptions options, ConnectionGuard connections,
        System.Security.Cryptography.X509Certificates.X509Certificate2? certificate)
    {
        kestrel.Listen(System.Net.IPAddress.Parse(options.Host), options.Port, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.Use(connections.Middleware); // before TLS: a connection counts from its first byte
            if (certificate is not null) listen.UseHttps(certificate);
        });
        kestrel.Limits.MaxRequestBodySize = null; // streams are bounded per message below
        // a coordinator needs one connection and one call at a time (plus health checks). Memory a stray client can
        // pin is bounded: connections x HTTP/2's per-connection flow-control window for calls waiting, and one
        // message being assembled (Worker calls run one at a time: CallGate). Connections without an authorised
        // call are capped by ConnectionGuard (the oldest make room), not by Kestrel's MaxConcurrentConnections,
        // which counted them against the coordinator before any token was seen. Kestrel's stream limit (100)
        // stays: lowering it made Kestrel answer bursts of cancelled calls with ENHANCE_YOUR_CALM.
        // tensors stream in MBs: HTTP/2's small default windows (768 KiB per stream) stall a sender every few chunks
        kestrel.Limits.Http2.InitialConnectionWindowSize = WireLimits.WindowBytes;
        kestrel.Limits.Http2.InitialStreamWindowSize = WireLimits.WindowBytes;
    }

    /// <summary>The Worker and Peer services, their interceptors, the health service, and what they share.</summary>
    private static void AddServices(IServiceCollection services, WorkerOptions options, TorchThread torch, ConnectionGuard connections)
    {
        services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = WireLimits.MaxMessageBytes;
            grpc.MaxSendMessageSize = WireLimits.MaxMessageBytes;
            grpc.Interceptors.Add<TokenInterceptor>();
            grpc.Interceptors.Add<CallGate>();
            grpc.Interceptors.Add<FaultInterceptor>();
            grpc.Interceptors.Add<ReadDeadline>();
            grpc.Interceptors.Add<TimesTrailerInterceptor>();
        });
        // grpc.health.v1: SERVING once the server is up (coordinators and the launcher wait for it); answered live, not cached
        services.AddGrpcHealthChecks(o => o.UseHealthChecksCache = false)
            .AddCheck("worker", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());
        services.AddSingleton(torch);
        services.AddSingleton(options);
        services.AddSingleton(connections);
        services.AddSingleton<CallGate>();
        services.AddSingleton<RingPeers>();
        services.AddSingleton<DeviceCommunicators>();
        services.AddSingleton<WorkerService>();
        services.AddSingleton<PeerService>();
        // the services' methods, bound so that a message that does not decode is InvalidArgument
        services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<WorkerService>>(services =>
            new UndecodableIsInvalid<WorkerService>(services.GetRequiredService<WorkerService>(), (binder, service) => Protocol.Worker.BindService(binder, service),
                services.GetRequiredService<ILogger<WorkerService>>()));
        services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<PeerService>>(services =>
            new UndecodableIsInvalid<PeerService>(services.GetRequiredService<PeerService>(), (binder, service) => Peer.BindService(binder, service),
                services.GetRequiredService<ILogger<PeerService>>()));
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _app.StopAsync();
        await _app.Services.GetRequiredService<WorkerService>().DisposeAsync();
        _app.Services.GetRequiredService<RingPeers>().Dispose();
        await _app.DisposeAsync();
        _torch.Dispose();
    }
}
