using SimClr.Core.Replica;
using SimClr.Core.Runtime;

namespace SimClr.Core.Step;

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
    /// <summary>The coordinator's host synchronisations in the step (reading the loss, copying dL/dz for transports).</summary>
    public SyncCounts CoordinatorSyncs { get; init; } = SyncCounts.None;

    /// <summary>Host synchronisations of the step on the path of one device: the coordinator's and replica 0's (one
    /// process's, when it is a single-process run).</summary>
    public SyncCounts Syncs => CoordinatorSyncs + (Replicas.Count > 0 ? Replicas[0].Syncs : SyncCounts.None);

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
    /// time_compute_max_ms and slowest_replica (the rank with the most compute), all of these only from steps whose phases
    /// were timed on the device (<see cref="ReplicaTimes.Unsynchronized"/>); host_syncs (reads from a device the
    /// host waits for: the loss, a non-finite flag, a fingerprint; <see cref="Syncs"/>), host_syncs_transport (copies of
    /// tensors for a transport) and host_syncs_timer (phase timers' synchronisations, CUDA only), of the coordinator and
    /// replica 0 together.
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
        if (Replicas.All(r => !r.Unsynchronized)) // else the phases are the host's queueing, not the device's work: left out
        {
            foreach (string phase in ReplicaPhases)
            {
                var values = Phase(phase);
                metrics[$"time_{phase}_ms"] = values.Average();
                metrics[$"time_{phase}_max_ms"] = values.Max();
            }
            metrics["time_compute_max_ms"] = Replicas.Max(r => r.TotalMs);
            metrics["slowest_replica"] = Slowest;
        }
        var syncs = Syncs;
        metrics["host_syncs"] = syncs.Reads;
        metrics["host_syncs_transport"] = syncs.Transport;
        metrics["host_syncs_timer"] = syncs.Timer;
        return metrics;
    }
}
