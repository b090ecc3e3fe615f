using System.CommandLine;
using System.Diagnostics;
using SimClr.Cli.Processes;
using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Loss;
using SimClr.Core.Optim;
using SimClr.Core.Replica;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands;

/// <summary>Benchmarks that print figures (BENCHMARKS.md records them with these commands); never part of the tests.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure performance; prints figures for BENCHMARKS.md.");
        command.Subcommands.Add(Augment());
        command.Subcommands.Add(Memory());
        command.Subcommands.Add(Step());
        command.Subcommands.Add(Breakdown());
        command.Subcommands.Add(Reduce());
        command.Subcommands.Add(BenchConvCommand.Create());
        return command;
    }

    private static Command Reduce()
    {
        var workers = new Option<string>("--workers") { Description = "worker counts to measure, comma-separated", DefaultValueFactory = _ => "2,4" };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats per count (median and spread)", DefaultValueFactory = _ => 5 };
        var precisions = new Option<string>("--precision") { Description = "ring precisions: exact, float32, bfloat16 (comma-separated)", DefaultValueFactory = _ => "exact,float32,bfloat16" };
        var star = new Option<bool>("--star") { Description = "also measure the coordinator's star (reduction.method star)", DefaultValueFactory = _ => true };
        var quick = new Option<bool>("--quick") { Description = "3 repeats, 2 and 4 workers, exact and bfloat16, no star" };
        var command = new Command("reduce", "Gradient reduction of a full-width ResNet-18's gradient (11.2M float32) between N workers over loopback gRPC "
            + "(worker servers in this process): the ring all-reduce between workers by precision, and the coordinator's star, next to this "
            + "machine's memcpy and the point-to-point gRPC link, and the ring bound 2(N-1)/N x size at that link's rate.")
        {
            workers, repeats, precisions, star, quick,
        };
        command.SetAction(async r =>
        {
            if (r.GetValue(quick)) return await RunReduce([2, 4], 3, [ReducePrecision.Exact, ReducePrecision.Bfloat16], star: false);
            int[] counts;
            ReducePrecision[] kinds;
            try
            {
                counts = r.GetValue(workers)!.Split(',').Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                kinds = r.GetValue(precisions)!.Split(',').Select(k => Enum.Parse<ReducePrecision>(k.Trim(), ignoreCase: true)).ToArray();
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                Console.Error.WriteLine($"simclr bench reduce: {e.Message} (--workers 2,4 --precision exact,float32,bfloat16)");
                return 2;
            }
            return await RunReduce(counts, r.GetValue(repeats), kinds, r.GetValue(star));
        });
        return command;
    }

    private static (double Median, double Min, double Max) Spread(List<double> seconds)
    {
        var sorted = seconds.Order().ToList();
        return (sorted[sorted.Count / 2], sorted[0], sorted[^1]);
    }

    private static async Task<int> RunReduce(int[] counts, int repeats, ReducePrecision[] precisions, bool star)
    {
        if (counts.Length == 0 || counts.Any(c => c < 2) || repeats < 1 || precisions.Length == 0)
        {
            Console.Error.WriteLine("simclr bench reduce: --workers must list counts >= 2, --repeats must be >= 1, --precision must name one");
            return 2;
        }
        set_num_threads(1);
        var config = new RunConfig
        {
            Stage = Stage.Pretrain,
            Threads = 1,
            Model = new ModelOptions { Width = 1.0, ProjectionHidden = 2048, ProjectionDim = 128 },
            Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 16, SyntheticTest: 16),
            BatchSize = 16,
        };
        using var data = await config.Data.LoadAsync();
        long parameters;
        using (var model = ReplicaFactory.Build(config, 3, data.Train.Mean, data.Train.Std, CPU)) parameters = model.ParameterCount;
        long gradientBytes = 4 * parameters;

        // the physical ceiling: one copy of a gradient in memory
        var source = new byte[gradientBytes];
        var target = new byte[gradientBytes];
        Random.Shared.NextBytes(source);
        var copies = new List<double>();
        for (int i = 0; i < 7; i++)
        {
            long start = Stopwatch.GetTimestamp();
            source.AsSpan().CopyTo(target);
            copies.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        double memcpy = gradientBytes / copies.Skip(2).Order().ElementAt(2) / 1e9;
        Console.WriteLine($"gradient: {parameters:N0} parameters, {gradientBytes / 1e6:F1} MB in float32; memcpy {memcpy:F2} GB/s (median of 5, one thread)");

        var hosts = new List<SimClr.Worker.WorkerHost>();
        var channels = new List<Grpc.Net.Client.GrpcChannel>();
        try
        {
            for (int w = 0; w < counts.Max(); w++) hosts.Add(await SimClr.Worker.WorkerHost.StartAsync(new SimClr.Worker.WorkerOptions { WorkerId = $"bench{w}" }));

            // the link: one gradient streamed to a worker over Peer.Ring, as the ring's pieces travel (the first run warms up)
            var link = new List<double>();
            using (var channel = SimClr.Protocol.WireChannel.Open(hosts[1].Address))
            {
                var client = new SimClr.Protocol.Peer.PeerClient(channel);
                for (int r = 0; r <= repeats; r++)
                {
                    double seconds = await PointToPoint(client, hosts[1], source, RingAllReduce.DefaultPieceElements * 4);
                    if (r > 0) link.Add(seconds);
                }
            }
            var (linkSeconds, linkMin, linkMax) = Spread(link);
            double linkBandwidth = gradientBytes / linkSeconds / 1e9;
            Console.WriteLine($"link: one gradient worker -> worker over loopback gRPC in {linkSeconds:F3} s (min {linkMin:F3}, max {linkMax:F3}): "
                + $"{linkBandwidth:F2} GB/s, {linkBandwidth / memcpy:P0} of memcpy");

            var random = new Random(1);
            channels.AddRange(hosts.Select(h => SimClr.Protocol.WireChannel.Open(h.Address)));
            foreach (int n in counts)
            {
                // the ring's traffic alone, all links at once (each worker streams 2(N-1)/N x size to the next): what this
                // machine's cores can move over gRPC when N links share them; the ring's own overhead is what it adds to this
                long ringBytes = 2L * (n - 1) * gradientBytes / n;
                var raw = new List<double>();
                for (int r = 0; r <= repeats; r++)
                {
                    long start = Stopwatch.GetTimestamp();
                    await Task.WhenAll(Enumerable.Range(0, n).Select(w => Task.Run(() =>
                        PointToPoint(new SimClr.Protocol.Peer.PeerClient(channels[(w + 1) % n]), hosts[(w + 1) % n], source, RingAllReduce.DefaultPieceElements * 4, ringBytes))));
                    if (r > 0) raw.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
                var (rawSeconds, rawMin, rawMax) = Spread(raw);
                Console.WriteLine($"N = {n}: the ring's traffic alone, {n} links at once: {rawSeconds:F3} s (min {rawMin:F3}, max {rawMax:F3}), "
                    + $"{n * ringBytes / rawSeconds / 1e9:F2} GB/s over all links");
                var locals = Enumerable.Range(0, n).Select(_ =>
                {
                    var values = new float[parameters];
                    for (long i = 0; i < values.LongLength; i++) values[i] = (float)(random.NextDouble() - 0.5) * 1e-3f;
                    return new GradientBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), false);
                }).ToList();
                double bound = 2.0 * (n - 1) / n * gradientBytes / (linkBandwidth * 1e9);
                Console.WriteLine($"N = {n}: ring bound 2(N-1)/N x size at the link's rate: {bound:F3} s ({2.0 * (n - 1) / n * gradientBytes / 1e6:F0} MB per worker)");
                Console.WriteLine($"       (the links share this machine's cores: the ring's traffic alone takes {rawSeconds / bound:F2}x the bound)");
                foreach (var precision in precisions)
                {
                    var times = new List<double>();
                    long sent = 0;
                    for (int r = 0; r <= repeats; r++)
                    {
                        var plan = new RingPlan((ulong)Random.Shared.NextInt64(1, long.MaxValue), hosts.Take(n).Select(h => h.Address.ToString()).ToList(),
                            precision, RingAllReduce.DefaultPieceElements);
                        long start = Stopwatch.GetTimestamp();
                        var results = await Task.WhenAll(Enumerable.Range(0, n).Select(w =>
                            Task.Run(() => hosts[w].Ring.AllReduceAsync(SimClr.Coordinator.GrpcReplicaEndpoint.Spec(plan, w), locals[w], CancellationToken.None))));
                        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                        if (results.Any(x => !x.Sum.AsSpan().SequenceEqual(results[0].Sum))) throw new InvalidOperationException("the workers' sums differ");
                        sent = results.Max(x => x.BytesSent);
                        if (r > 0) times.Add(seconds);
                    }
                    var (median, min, max) = Spread(times);
                    Console.WriteLine($"  ring {precision,-8} {median:F3} s per reduction (min {min:F3}, max {max:F3}); each worker sends {sent / 1e6:F0} MB "
                        + $"({sent / (double)gradientBytes:F2} x the gradient), {sent / median / 1e9:F2} GB/s per worker; ring / bound = {median / bound:F2}x, "
                        + $"ring / its traffic alone = {median / rawSeconds:F2}x; "
                        + "coordinator: 0 MB");
                }
            }
            if (star)
            {
                foreach (int n in counts)
                {
                    IReadOnlyList<IReplicaEndpoint> endpoints = [];
                    try
                    {
                        endpoints = await SimClr.Coordinator.WorkerPool.JoinAsync(hosts.Take(n).Select(h => h.Address).ToList(), config, data.Train, TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60));
                        var state = await endpoints[0].SaveStateAsync(CancellationToken.None);
                        long stateBytes = state.Sum(t => (long)t.Data.Length);
                        var totals = new List<double>();
                        for (int r = 0; r <= repeats; r++)
                        {
                            long start = Stopwatch.GetTimestamp();
                            await Task.WhenAll(endpoints.Select(e => e.SaveStateAsync(CancellationToken.None))); // every worker -> here
                            await Task.WhenAll(endpoints.Select(e => e.LoadStateAsync(state, CancellationToken.None))); // here -> every worker
                            if (r > 0) totals.Add(Stopwatch.GetElapsedTime(start).TotalSeconds * gradientBytes / stateBytes); // per gradient-sized transfer
                        }
                        var (median, min, max) = Spread(totals);
                        double bound = 2.0 * (n - 1) / n * gradientBytes / (linkBandwidth * 1e9);
                        Console.WriteLine($"star over {n} workers: {median:F3} s per reduction (min {min:F3}, max {max:F3}); each worker moves "
                            + $"{2 * gradientBytes / 1e6:F0} MB, the coordinator {2.0 * n * gradientBytes / 1e6:F0} MB; star / ring bound = {median / bound:F2}x");
                    }
                    finally
                    {
                        foreach (var e in endpoints) e.Dispose();
                    }
                }
            }
        }
        finally
        {
            foreach (var c in channels) c.Dispose();
            foreach (var h in hosts) await h.DisposeAsync();
        }
        Console.WriteLine("(worker servers in this process, each its own Kestrel and HTTP/2 connections; the ring's time includes its additions and "
            + "precision conversions; the star's figures are scaled from a whole state to one gradient and include the workers' (de)serialisation)");
        return 0;
    }

    /// <summary>Seconds to stream <paramref name="bytes"/> (cycling through <paramref name="payload"/>) through <paramref name="client"/> to
    /// <paramref name="to"/>'s Peer.Ring in pieces, its inbox drained as the ring would.</summary>
    private static async Task<double> PointToPoint(SimClr.Protocol.Peer.PeerClient client, SimClr.Worker.WorkerHost to, byte[] payload, int pieceBytes, long bytes = -1)
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
                Dtype = SimClr.Protocol.DType.Float32,
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

    private static Command Breakdown()
    {
        var run = new Argument<string>("run") { Description = "a run directory, or its metrics.jsonl" };
        var skip = new Option<int>("--skip") { Description = "leave out the first N step records (warm-up: the first is step 1 alone)", DefaultValueFactory = _ => 1 };
        var command = new Command("breakdown", "Where a run's step time went, from the time_* metrics every run writes into metrics.jsonl: "
            + "coordinator (prepare, loss, reduce) and replicas (augment, forward, re-forward, backward, optimizer, serialize, transfer, idle).")
        {
            run, skip,
        };
        command.SetAction(r => RunBreakdown(r.GetValue(run)!, r.GetValue(skip)));
        return command;
    }

    private static int RunBreakdown(string path, int skip)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "metrics.jsonl") : path;
        if (!File.Exists(file))
        {
            Console.Error.WriteLine($"simclr bench breakdown: no {file}");
            return 2;
        }
        var records = File.ReadLines(file).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == "step" && e.TryGetProperty("time_step_ms", out _)).ToList();
        if (records.Count > skip) records = records.Skip(skip).ToList();
        if (records.Count == 0)
        {
            Console.Error.WriteLine($"simclr bench breakdown: {file} has no step records with time_* metrics");
            return 2;
        }
        // each record averages timed_steps steps: weight it by them
        double steps = records.Sum(e => e.GetProperty("timed_steps").GetDouble());
        double Mean(string key) => records.Sum(e => (e.TryGetProperty(key, out var v) ? v.GetDouble() : 0) * e.GetProperty("timed_steps").GetDouble()) / steps;
        double step = Mean("time_step_ms");
        var slowest = records.GroupBy(e => e.GetProperty("slowest_replica").GetDouble()).Select(g => (Replica: g.Key, Records: g.Count())).MaxBy(x => x.Records);
        Console.WriteLine($"{file}: {steps:F0} steps in {records.Count} record(s); mean step {step:F1} ms");
        Console.WriteLine();
        Console.WriteLine("| where | phase | mean ms/step | share of step | max over replicas, ms/step |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: |");
        var rows = new List<(string Where, string Phase, double Ms)>();
        foreach (string phase in StepTimes.CoordinatorPhases) rows.Add(("coordinator", phase, Mean($"time_{phase}_ms")));
        foreach (string phase in StepTimes.ReplicaPhases) rows.Add(("replica", phase, Mean($"time_{phase}_ms")));
        foreach (var (where, phase, ms) in rows)
        {
            string max = where == "replica" ? $"{Mean($"time_{phase}_max_ms"):F1}" : "";
            Console.WriteLine($"| {where} | {phase} | {ms:F1} | {ms / step:P1} | {max} |");
        }
        double sum = rows.Sum(r => r.Ms);
        Console.WriteLine($"| | **step** | **{step:F1}** | (parts add up to {sum:F1}) | compute {Mean("time_compute_max_ms"):F1} |");
        Console.WriteLine();
        var top = rows.Where(r => r.Phase is not "idle").MaxBy(r => r.Ms);
        Console.WriteLine($"largest part: {top.Where} {top.Phase} ({top.Ms / step:P0} of the step); replica idle {Mean("time_idle_ms") / step:P0}; "
            + $"slowest replica: rank {slowest.Replica:F0} (in {slowest.Records} of {records.Count} records)");
        return 0;
    }

    private static Command Memory()
    {
        var steps = new Option<int>("--steps") { Description = "pre-training steps of a tiny net", DefaultValueFactory = _ => 300 };
        var command = new Command("memory", "Resident memory and live tensors over a tiny pre-training run: flat after warm-up, or a leak.") { steps };
        command.SetAction(async r => await RunMemory(r.GetValue(steps)));
        return command;
    }

    private static async Task<int> RunMemory(int steps)
    {
        string runs = Path.Combine(Path.GetTempPath(), $"simclr-bench-memory-{Environment.ProcessId}");
        var config = new RunConfig
        {
            Stage = Stage.Pretrain,
            Threads = 1,
            Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 64, SyntheticTest: 8),
            Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
            Optimizer = new OptimizerOptions { BaseLearningRate = 1.0, Scaling = LearningRateScaling.None },
            Epochs = steps / 8 + 1,
            BatchSize = 8,
            WarmupEpochs = 1,
            KnnEveryEpochs = 0,
            CheckpointEverySteps = 0,
            LogEverySteps = 100,
            RunsFolder = runs,
            RunName = "memory",
        };
        var probe = new MemoryProbe(Math.Max(1, steps / 6));
        try
        {
            await StageRunner.RunAsync(config, RunDirectory.Create(config), probe, stopAfterStep: steps + 1);
        }
        finally
        {
            Directory.Delete(runs, recursive: true);
        }
        var afterWarmUp = probe.Samples.Where(s => s.Step >= steps / 3).ToList();
        double growth = (double)(afterWarmUp[^1].Rss - afterWarmUp[0].Rss) / afterWarmUp[0].Rss;
        foreach (var (step, rss, live) in probe.Samples) Console.WriteLine($"step {step,5}: RSS {rss / 1048576.0,7:F1} MB, live tensors {live}");
        Console.WriteLine($"RSS growth from step {afterWarmUp[0].Step} to {afterWarmUp[^1].Step}: {growth:P1}; live tensors {afterWarmUp[0].LiveTensors} -> {afterWarmUp[^1].LiveTensors}");
        return 0;
    }

    private static Command Step()
    {
        var threads = new Option<int>("--threads") { Description = "torch intra-op threads (bench/step_reference.py takes the same)", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--steps") { Description = "timed steps per repeat", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 2 };
        var repeats = new Option<int>("--repeats") { Description = "timed repeats (median and spread are reported)", DefaultValueFactory = _ => 3 };
        var quick = new Option<bool>("--quick") { Description = "1 warm-up step, 1 repeat of 2 steps (overrides the three above)" };
        var command = new Command("step", "One SimCLR training step (full-width CIFAR-stem ResNet-18 + 512-2048-128 head, 2x64 views, fp32, "
            + "NT-Xent, LARS) on pre-augmented views: ms/step and process CPU time per step.")
        {
            threads, steps, warmup, repeats, quick,
        };
        command.SetAction(r => r.GetValue(quick)
            ? RunStep(r.GetValue(threads), steps: 2, warmup: 1, repeats: 1)
            : RunStep(r.GetValue(threads), r.GetValue(steps), r.GetValue(warmup), r.GetValue(repeats)));
        return command;
    }

    /// <summary>The batch of bench/step_reference.py: 64 images, two views each.</summary>
    private const int StepImages = 64;

    private static int RunStep(int threads, int steps, int warmup, int repeats)
    {
        if (threads < 1 || steps < 1 || warmup < 0 || repeats < 1)
        {
            Console.Error.WriteLine("simclr bench step: --threads, --steps, --repeats must be >= 1 and --warmup >= 0");
            return 2;
        }
        set_num_threads(threads);
        Console.WriteLine($"malloc: {Allocator.Description}");
        // the quickstart's pre-training optimiser and loss, at full width with the seed's 2048-128 head (configs/cifar10-simclr-b256.json)
        var config = new RunConfig
        {
            Stage = Stage.Pretrain,
            Threads = threads,
            Model = new ModelOptions { Width = 1.0, ProjectionHidden = 2048, ProjectionDim = 128 },
            Optimizer = new OptimizerOptions
            {
                Kind = OptimizerKind.Lars,
                BaseLearningRate = 1.0,
                Scaling = LearningRateScaling.Linear,
                Momentum = 0.9,
                WeightDecay = 1e-6,
                TrustCoefficient = 0.02,
            },
            BatchSize = StepImages,
        };
        using var replica = ReplicaFactory.Build(config, channels: 3, Cifar10.Mean, Cifar10.Std, CPU);
        var loss = new NtXentLoss(config.Loss.Temperature, config.Loss.SeedSimilarityClamp);
        double learningRate = config.Optimizer.PeakLearningRate(StepImages);
        manual_seed(1);
        using var views = randn(2 * StepImages, 3, 32, 32); // normalised views, made once: augmentation is not timed
        replica.Network.train();

        // the split step of DataParallelStep with one in-process replica (the single-process path), minus its byte
        // copies of z and dL/dz (128 x 128 floats): forward, NT-Xent and dL/dz on detached z, backward, LARS
        double OneStep()
        {
            using var scope = NewDisposeScope();
            replica.ZeroGrad();
            var z = replica.Network.forward(views);
            var (value, gradient) = loss.LossAndGradient(z);
            z.backward([gradient]);
            replica.Step(learningRate);
            return value;
        }

        for (int w = 0; w < warmup; w++) OneStep();
        var rows = new List<(double Ms, double User, double Sys, double Faults)>();
        using var self = Process.GetCurrentProcess();
        double lastLoss = double.NaN;
        for (int r = 0; r < repeats; r++)
        {
            self.Refresh();
            var (user0, sys0, faults0) = (self.UserProcessorTime, self.PrivilegedProcessorTime, MinorFaults());
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++) lastLoss = OneStep();
            clock.Stop();
            self.Refresh();
            var row = (clock.Elapsed.TotalMilliseconds / steps, (self.UserProcessorTime - user0).TotalSeconds / steps,
                (self.PrivilegedProcessorTime - sys0).TotalSeconds / steps, (double)(MinorFaults() - faults0) / steps);
            rows.Add(row);
            Console.WriteLine($"repeat {r + 1}: {row.Item1:F1} ms/step, user {row.Item2:F3} s/step, sys {row.Item3:F3} s/step, minor faults {row.Item4:F0}/step");
        }
        static double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToList();
            return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
        }
        Console.WriteLine($"simclr step ({threads} thread(s), {2 * StepImages} views, loss {lastLoss:F4}): median {Median(rows.Select(x => x.Ms)):F1} ms/step, "
            + $"min {rows.Min(x => x.Ms):F1}, max {rows.Max(x => x.Ms):F1}; user {Median(rows.Select(x => x.User)):F3} s/step, "
            + $"sys {Median(rows.Select(x => x.Sys)):F3} s/step, minor faults {Median(rows.Select(x => x.Faults)):F0}/step ({repeats} repeats of {steps} steps after {warmup} warm-up), "
            + $"peak RSS {PeakRssKiB() / 1024.0:F0} MiB");
        return 0;
    }

    /// <summary>The largest resident set of this process so far, KiB (VmHWM in /proc/self/status), or 0 where there is no /proc.</summary>
    private static long PeakRssKiB()
    {
        if (!File.Exists("/proc/self/status")) return 0;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat field 10), or 0 where there is no /proc.</summary>
    private static long MinorFaults()
    {
        if (!File.Exists("/proc/self/stat")) return 0;
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture); // fields from 3 (state) on
    }

    private static Command Augment()
    {
        var threads = new Option<int>("--threads") { Description = "torch intra-op threads (views/s is reported per thread)", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "images per call (two views each)", DefaultValueFactory = _ => 256 };
        var repeats = new Option<int>("--repeats") { Description = "timed runs (median and spread are reported)", DefaultValueFactory = _ => 5 };
        var views = new Option<int>("--views") { Description = "views per timed run", DefaultValueFactory = _ => 20_000 };
        var device = new Option<string>("--device") { Description = "cpu, cuda, cuda:1, ...", DefaultValueFactory = _ => "cpu" };
        var kernel = new Option<AugmentationKernel>("--kernel") { Description = "auto (fused CPU loops on cpu), tensor, cpu", DefaultValueFactory = _ => AugmentationKernel.Auto };
        var command = new Command("augment", "SimCLR view augmentation throughput (the seed's CIFAR-10 transform), views/s per thread.")
        {
            threads, batch, repeats, views, device, kernel,
        };
        command.SetAction(r => RunAugment(r.GetValue(threads), r.GetValue(batch), r.GetValue(repeats), r.GetValue(views), r.GetValue(device)!, r.GetValue(kernel)));
        return command;
    }

    private static int RunAugment(int threads, int batch, int repeats, int viewsPerRun, string deviceName, AugmentationKernel kernel)
    {
        if (threads < 1 || batch < 1 || repeats < 1 || viewsPerRun < 2)
        {
            Console.Error.WriteLine("simclr bench augment: --threads, --batch, --repeats must be >= 1 and --views >= 2");
            return 2;
        }
        set_num_threads(threads);
        var device = new Device(deviceName);
        using var data = SyntheticShapes.Generate(trainCount: 1024, testCount: 1, seed: 0);
        var augmenter = new ViewAugmenter(new AugmentationOptions(), seed: 0, Cifar10.Mean, Cifar10.Std) { Kernel = kernel, CpuThreads = threads };
        using var images = data.Train.Images.to(device);
        int calls = Math.Max(1, viewsPerRun / (2 * batch));
        long epoch = 0;

        void OneCall(int call)
        {
            using var scope = NewDisposeScope();
            long start = (long)call * batch % (1024 - batch + 1);
            var indices = Enumerable.Range(0, batch).Select(i => start + i).ToArray();
            var views = augmenter.TwoViews(images.narrow(0, start, batch), indices, epoch++);
            if (device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize();
            _ = views.shape;
        }

        // warm-up: past .NET's tiered JIT (hot loops are recompiled optimised after ~30 calls) and torch's first-call costs
        var warmUp = Stopwatch.StartNew();
        for (int w = 0; w < 40 || warmUp.Elapsed.TotalSeconds < 1; w++) OneCall(w);
        var rates = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            for (int c = 0; c < calls; c++) OneCall(c);
            rates.Add(2.0 * batch * calls / clock.Elapsed.TotalSeconds / threads);
        }
        rates.Sort();
        Console.WriteLine($"simclr augment ({device}, {kernel} kernel, {threads} thread(s), batch {batch} images = {2 * batch} views): "
            + $"median {rates[rates.Count / 2]:F0} views/s per thread, min {rates[0]:F0}, max {rates[^1]:F0} ({repeats} runs of {2 * batch * calls} views)");
        return 0;
    }
}
