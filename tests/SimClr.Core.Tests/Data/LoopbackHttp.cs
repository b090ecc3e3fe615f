using System.Net;
using System.Net.Sockets;

namespace SimClr.Core.Tests.Data;

/// <summary>One file served over HTTP on loopback: the download paths of CIFAR-10 and STL-10, tested offline.</summary>
internal static class LoopbackHttp
{
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Serves one file over HTTP on loopback for the duration of the test.</summary>
    public static async Task<T> Serving<T>(string file, Func<Uri, Task<T>> client)
    {
        int port = FreePort();
        using var server = new HttpListener();
        server.Prefixes.Add($"http://127.0.0.1:{port}/");
        server.Start();
        var serve = Task.Run(async () =>
        {
            var context = await server.GetContextAsync();
            byte[] body = await File.ReadAllBytesAsync(file);
            context.Response.ContentLength64 = body.Length;
            await context.Response.OutputStream.WriteAsync(body);
            context.Response.Close();
        });
        var result = await client(new Uri($"http://127.0.0.1:{port}/{Path.GetFileName(file)}"));
        await serve;
        return result;
    }
}
