using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;

namespace SimClr.Protocol;

/// <summary>
/// The one way a gRPC channel to a worker is opened, by the coordinator (Worker calls), by a worker (the next worker's
/// Peer.Ring) and by the benchmarks: the message limits of <see cref="WireLimits"/>, HTTP/2 stream windows of
/// <see cref="WireLimits.WindowBytes"/> (a ring piece or gradient chunk is not held up by the 64 KiB default), one
/// connection per address, and for https addresses the system's roots plus <paramref name="trusted"/> (<see cref="Tls"/>).
/// </summary>
public static class WireChannel
{
    public static GrpcChannel Open(Uri address, X509Certificate2? trusted = null)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, InitialHttp2StreamWindowSize = WireLimits.WindowBytes };
        if (address.Scheme == Uri.UriSchemeHttps) handler.SslOptions.RemoteCertificateValidationCallback = Tls.Validator(trusted);
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = WireLimits.MaxMessageBytes,
            MaxSendMessageSize = WireLimits.MaxMessageBytes,
            HttpHandler = handler,
            DisposeHttpClient = true,
        });
    }
}
