namespace SimClr.Worker;

/// <summary>A worker process's settings.</summary>
public sealed record WorkerOptions
{
    public string WorkerId { get; init; } = Environment.MachineName + ":" + Environment.ProcessId;

    /// <summary>cpu, cuda, cuda:1, ...: the one device this worker owns.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>data.sharedStorage runs: where this worker opens the data set (its mount of the shared copy); null:
    /// the coordinator's data.root, as the run config names it.</summary>
    public string? DataRoot { get; init; }

    /// <summary>Address to listen on; loopback by default.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port.</summary>
    public int Port { get; init; }

    /// <summary>The run token every Worker call must carry; required to listen beyond loopback.</summary>
    public string? Token { get; init; }

    /// <summary>PEM certificate to serve TLS with (https); null: plain HTTP/2.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificatePath"/> (null when the certificate file holds it).</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>How long a Worker call waits for the one before it to finish before it is refused (ResourceExhausted).</summary>
    public double BusySeconds { get; init; } = 60;

    /// <summary>How long a Worker call that streams its request may go without sending a message before it is ended
    /// (DeadlineExceeded), freeing the worker for the next call (<see cref="ReadDeadline"/>).</summary>
    public double MessageSeconds { get; init; } = 30;

    /// <summary>Path of NCCL's libnccl.so.2 (reduction.method nccl or auto on CUDA); null: $SIMCLR_NCCL_LIBRARY, else the
    /// loader's search path and the Python environments' NCCL wheels (<see cref="Core.Runtime.Nccl.Load"/>).</summary>
    public string? NcclLibrary { get; init; }

    /// <summary>The devices' collective library to use instead of NCCL (tests: an in-process stand-in); null: NCCL.</summary>
    public Core.Runtime.IDeviceCollective? DeviceCollective { get; init; }

    public bool IsLoopback => System.Net.IPAddress.TryParse(Host, out var ip) && System.Net.IPAddress.IsLoopback(ip);
}
