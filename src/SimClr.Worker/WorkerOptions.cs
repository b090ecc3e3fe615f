namespace SimClr.Worker;

/// <summary>A worker process's settings.</summary>
public sealed record WorkerOptions
{
    public string WorkerId { get; init; } = Environment.MachineName + ":" + Environment.ProcessId;

    /// <summary>cpu, cuda, cuda:1, ...: the one device this worker owns.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Address to listen on; loopback by default.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port.</summary>
    public int Port { get; init; }

    /// <summary>The run token every Worker call must carry; required to listen beyond loopback.</summary>
    public string? Token { get; init; }

    public bool IsLoopback => System.Net.IPAddress.TryParse(Host, out var ip) && System.Net.IPAddress.IsLoopback(ip);
}
