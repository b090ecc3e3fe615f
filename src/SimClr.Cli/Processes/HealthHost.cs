using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace SimClr.Cli.Processes;

/// <summary>
/// The standard grpc.health.v1 service alone, for processes that serve nothing else (the coordinator: `simclr
/// coordinator --health-port`), so every process of a run can be probed the same way (grpc_health_probe, a load
/// balancer, a launcher). SERVING while the process runs. A worker serves its own beside its Worker service.
/// </summary>
internal sealed class HealthHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HealthHost(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<HealthHost> StartAsync(int port, string host = "127.0.0.1")
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Parse(host), port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddGrpcHealthChecks(o => o.UseHealthChecksCache = false)
            .AddCheck("process", () => HealthCheckResult.Healthy());
        var app = builder.Build();
        app.MapGrpcHealthChecksService();
        await app.StartAsync();
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HealthHost(app, new Uri(bound));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
