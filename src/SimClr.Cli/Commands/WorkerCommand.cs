using System.CommandLine;
using SimClr.Cli.Processes;
using SimClr.Core.Config;
using SimClr.Worker;

namespace SimClr.Cli.Commands;

/// <summary>simclr worker: one worker process owning one device, serving the coordinator until stopped.</summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device("the device this worker owns: cpu, cuda, cuda:1, ...");
        var host = new Option<string>("--host") { Description = "address to listen on (loopback unless told otherwise)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "port to listen on (0: any free port, printed)", DefaultValueFactory = _ => 0 };
        var threads = CommonOptions.Threads("torch intra-op threads (0: torch's default)", 0);
        var tokenFile = CommonOptions.TokenFile($"file holding the run token every call must carry (default: ${SimClr.Protocol.RunToken.EnvironmentVariable}, if set); required beyond loopback");
        var tlsCert = new Option<string?>("--tls-cert") { Description = "serve TLS (https) with this PEM certificate; the coordinator then needs https:// addresses (and --tls-ca for a private CA)" };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert (when the certificate file does not hold it)" };
        var dataRoot = new Option<string?>("--data-root") { Description = "runs with data.sharedStorage: this worker's path to the shared data set (default: the coordinator's data.root)" };
        var nccl = new Option<string?>("--nccl-library")
        {
            Description = $"path of NCCL's {SimClr.Core.Runtime.Nccl.LibraryName} for reduction.method nccl/auto on CUDA (default: ${SimClr.Core.Runtime.Nccl.LibraryVariable}, else the loader's path and Python's nvidia-nccl wheels)",
        };
        var parent = CommonOptions.ParentPid();
        var command = new Command("worker", "Run a worker: one device, one model replica, the gRPC Worker service of protos/simclr.proto.") { device, host, port, threads, tokenFile, tlsCert, tlsKey, dataRoot, nccl, parent };
        command.SetAction((r, cancel) => ExitCodes.RunAsync("simclr worker", async () =>
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel, ParentWatch.Watch(r.GetValue(parent), Console.Error.WriteLine));
            var options = Options(r.GetValue(device)!, r.GetValue(host)!, r.GetValue(port), r.GetValue(tokenFile), r.GetValue(tlsCert), r.GetValue(tlsKey)) with { DataRoot = r.GetValue(dataRoot), NcclLibrary = r.GetValue(nccl) };
            return await Serve(options, r.GetValue(threads), stop.Token);
        }));
        return command;
    }

    /// <summary>The worker the options ask for, or a <see cref="ConfigException"/> saying what is wrong with them.</summary>
    private static WorkerOptions Options(string device, string host, int port, string? tokenFile, string? tlsCert, string? tlsKey)
    {
        SimClr.Core.Stages.StageRunner.CheckDevice(device);
        string? token = Credentials.Token(tokenFile);
        if (host != "localhost" && !System.Net.IPAddress.TryParse(host, out _))
            throw new ConfigException($"--host {host} is not an IP address; give the address of the interface to listen on (0.0.0.0 for all)");
        if (tlsKey is not null && tlsCert is null) throw new ConfigException("--tls-key needs --tls-cert");
        var options = new WorkerOptions { Device = device, Host = host == "localhost" ? "127.0.0.1" : host, Port = port, Token = token, TlsCertificatePath = tlsCert, TlsKeyPath = tlsKey };
        if (tlsCert is not null) Credentials.CheckServerCertificate(tlsCert, tlsKey);
        if (!options.IsLoopback && token is null)
            throw new ConfigException($"listening on {host} needs a run token: put one in a file (openssl rand -hex 32 > token) and pass --token-file, or set {SimClr.Protocol.RunToken.EnvironmentVariable}; the coordinator needs the same");
        return options;
    }

    private static async Task<int> Serve(WorkerOptions options, int threads, CancellationToken cancel)
    {
        if (threads > 0) TorchSharp.torch.set_num_threads(threads);
        await using var worker = await WorkerHost.StartAsync(options);
        Console.WriteLine($"worker listening on {worker.Address} (device {options.Device}); Ctrl-C to stop");
        try
        {
            using var either = CancellationTokenSource.CreateLinkedTokenSource(cancel, worker.Stopping);
            await Task.Delay(Timeout.Infinite, either.Token);
        }
        catch (OperationCanceledException)
        {
        }
        Console.WriteLine($"worker stopped; peak RSS {ProcessStats.PeakRss() / (1024.0 * 1024):F0} MiB");
        return ExitCodes.Success;
    }
}
