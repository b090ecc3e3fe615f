using System.Globalization;

namespace SimClr.Core.Training;

/// <summary>
/// Milliseconds a replica spent on its own work, by phase: augmenting views, the forward pass, the gradient-caching
/// re-forward (re-augmentation included; 0 without chunks), the backward pass, the optimiser step, the rest of its
/// calls (serialise: bytes to and from tensors, flattening or installing the gradient, the parameter checksum), and
/// the ring all-reduce with the other workers (ring: what is left of it once backward has ended, waiting for the other
/// workers included; the buckets summed during backward are not counted again; 0 with the star).
/// What the calls cost beyond this (the wire, waiting for the worker's torch thread) the coordinator measures.
/// </summary>
public sealed record ReplicaTimes(double AugmentMs, double ForwardMs, double ReforwardMs, double BackwardMs, double OptimizerMs, double SerializeMs,
    double RingMs = 0)
{
    public static readonly ReplicaTimes None = new(0, 0, 0, 0, 0, 0);

    public double TotalMs => AugmentMs + ForwardMs + ReforwardMs + BackwardMs + OptimizerMs + SerializeMs + RingMs;

    public static ReplicaTimes operator +(ReplicaTimes a, ReplicaTimes b) => new(a.AugmentMs + b.AugmentMs, a.ForwardMs + b.ForwardMs,
        a.ReforwardMs + b.ReforwardMs, a.BackwardMs + b.BackwardMs, a.OptimizerMs + b.OptimizerMs, a.SerializeMs + b.SerializeMs, a.RingMs + b.RingMs);

    /// <summary>The wire form (the worker's "simclr-times" gRPC trailer): "augment=1.25;forward=3.5;...".</summary>
    public string Format() => string.Join(';', Fields().Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Name}={f.Ms:0.###}")));

    /// <summary>Reads <see cref="Format"/>'s form; unknown names are ignored (a newer worker), missing ones are 0; null when malformed.</summary>
    public static ReplicaTimes? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string part in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !double.TryParse(part[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double ms) || !double.IsFinite(ms) || ms < 0)
                return null;
            values[part[..eq]] = ms;
        }
        double Get(string name) => values.GetValueOrDefault(name);
        return new ReplicaTimes(Get("augment"), Get("forward"), Get("reforward"), Get("backward"), Get("optimizer"), Get("serialize"), Get("ring"));
    }

    private IEnumerable<(string Name, double Ms)> Fields() =>
        [("augment", AugmentMs), ("forward", ForwardMs), ("reforward", ReforwardMs), ("backward", BackwardMs), ("optimizer", OptimizerMs), ("serialize", SerializeMs), ("ring", RingMs)];
}

/// <summary>
/// Where one step's wall time went (<see cref="DataParallelStep"/>). The coordinator's own work: preparing the shards
/// (and every check), the global loss with dL/dz, the gradient reduction. Each replica's: its <see cref="ReplicaTimes"/>,
/// transfer (its calls' wall time beyond its own work: serialisation on this side, the wire, queueing on the worker),
/// and idle (waiting in a phase for slower replicas). For every replica, its compute + transfer + idle plus the
/// coordinator's three parts equals the step's wall time.
/// </summary>
public sealed record StepTimes(double StepMs, double PrepareMs, double LossMs, double ReduceMs, IReadOnlyList<ReplicaTimes> Replicas,
    IReadOnlyList<double> TransferMs, IReadOnlyList<double> IdleMs)
{
    /// <summary>The phases written into metrics.jsonl, in table order (each as time_NAME_ms, mean over replicas for replica phases).</summary>
    public static readonly IReadOnlyList<string> CoordinatorPhases = ["prepare", "loss", "reduce"];

    public static readonly IReadOnlyList<string> ReplicaPhases = ["augment", "forward", "reforward", "backward", "ring", "optimizer", "serialize", "transfer", "idle"];

    /// <summary>The replica with the most compute this step (its rank among the step's replicas).</summary>
    public int Slowest => Replicas.Select((r, w) => (r.TotalMs, w)).MaxBy(x => x.TotalMs).w;

    private double[] Phase(string name) => name switch
    {
        "augment" => Replicas.Select(r => r.AugmentMs).ToArray(),
        "forward" => Replicas.Select(r => r.ForwardMs).ToArray(),
        "reforward" => Replicas.Select(r => r.ReforwardMs).ToArray(),
        "backward" => Replicas.Select(r => r.BackwardMs).ToArray(),
        "ring" => Replicas.Select(r => r.RingMs).ToArray(),
        "optimizer" => Replicas.Select(r => r.OptimizerMs).ToArray(),
        "serialize" => Replicas.Select(r => r.SerializeMs).ToArray(),
        "transfer" => [.. TransferMs],
        "idle" => [.. IdleMs],
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    /// <summary>
    /// Flat metrics: time_step_ms; time_prepare_ms, time_loss_ms, time_reduce_ms (coordinator); for each replica phase
    /// time_PHASE_ms (mean over replicas: these and the coordinator's add up to time_step_ms) and time_PHASE_max_ms;
    /// time_compute_max_ms and slowest_replica (the rank with the most compute).
    /// </summary>
    public Dictionary<string, double> ToMetrics()
    {
        var metrics = new Dictionary<string, double>
        {
            ["time_step_ms"] = StepMs,
            ["time_prepare_ms"] = PrepareMs,
            ["time_loss_ms"] = LossMs,
            ["time_reduce_ms"] = ReduceMs,
        };
        foreach (string phase in ReplicaPhases)
        {
            var values = Phase(phase);
            metrics[$"time_{phase}_ms"] = values.Average();
            metrics[$"time_{phase}_max_ms"] = values.Max();
        }
        metrics["time_compute_max_ms"] = Replicas.Max(r => r.TotalMs);
        metrics["slowest_replica"] = Slowest;
        return metrics;
    }
}
