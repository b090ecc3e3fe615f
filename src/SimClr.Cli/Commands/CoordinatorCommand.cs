using System.CommandLine;
using SimClr.Cli.Processes;
using SimClr.Core.Config;

namespace SimClr.Cli.Commands;

/// <summary>
/// simclr coordinator: a pre-training run whose steps run on already-started workers (simclr worker). It owns the data
/// set, sampler, schedule, run directory, metrics, checkpoints and kNN monitor, exactly as `simclr pretrain` does.
/// </summary>
internal static class CoordinatorCommand
{
    public static Command Create()
    {
        var workers = new Option<string>("--workers", "-w") { Description = "worker addresses, comma-separated, in replica order (e.g. http://127.0.0.1:5001,http://127.0.0.1:5002)", Required = true };
        var callTimeout = new Option<int>("--call-timeout") { Description = "seconds a worker call may take before the worker counts as hung", DefaultValueFactory = _ => 600 };
        var healthTimeout = new Option<int>("--health-timeout") { Description = "seconds to wait for every worker to report SERVING", DefaultValueFactory = _ => 120 };
        var tokenFile = CommonOptions.TokenFile($"file holding the run token the workers expect (default: ${SimClr.Protocol.RunToken.EnvironmentVariable}, if set)");
        var stage = CommonOptions.DistributedStage("pretrain, finetune or supervised (data-parallel: the same step machinery, a local loss)");
        var run = new RunOptions("finetune: checkpoint or exported backbone to start from (read here; workers receive the weights)");
        var healthPort = new Option<int?>("--health-port") { Description = "serve grpc.health.v1 on this loopback port (0: any free port, printed)" };
        var tlsCa = new Option<string?>("--tls-ca") { Description = "for https:// workers: a certificate to trust besides the system's (your private CA, or the workers' self-signed certificate)" };
        var parent = CommonOptions.ParentPid();
        var command = new Command("coordinator", "Train on running workers: shard each global batch, global loss (NT-Xent or cross-entropy), summed gradients, checksums every step.")
        {
            workers, stage, run.Config, run.Set, run.Resume, run.Pretrained, run.Plain, callTimeout, healthTimeout, tokenFile, tlsCa, healthPort, parent,
        };
        command.SetAction((r, cancel) => ExitCodes.RunAsync("simclr coordinator", async () =>
        {
            await using var health = r.GetValue(healthPort) is int hp ? await HealthHost.StartAsync(hp) : null;
            if (health is not null) Console.WriteLine($"coordinator health on {health.Address}");
            var addresses = Addresses(r.GetValue(workers)!);
            string? token = Credentials.Token(r.GetValue(tokenFile));
            var trusted = Credentials.Trusted(r.GetValue(tlsCa));
            using var launcherGone = CancellationTokenSource.CreateLinkedTokenSource(cancel, ParentWatch.Watch(r.GetValue(parent), Console.Error.WriteLine));
            using var replicas = new RemoteReplicas(addresses, TimeSpan.FromSeconds(r.GetValue(callTimeout)), TimeSpan.FromSeconds(r.GetValue(healthTimeout)),
                token, trusted, launcherGone.Token);
            return StageCommands.Run(CommonOptions.ToStage(r.GetValue(stage)!), run.Read(r), launcherGone.Token, replicas);
        }));
        return command;
    }

    public static List<Uri> Addresses(string list)
    {
        var addresses = new List<Uri>();
        foreach (string item in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string text = item.Contains("://", StringComparison.Ordinal) ? item : "http://" + item;
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Port <= 0)
                throw new ConfigException($"'{item}' is not a worker address (host:port or http://host:port)");
            addresses.Add(uri);
        }
        if (addresses.Count == 0) throw new ConfigException("--workers lists no address");
        if (addresses.Distinct().Count() != addresses.Count) throw new ConfigException("--workers lists an address twice");
        return addresses;
    }
}
