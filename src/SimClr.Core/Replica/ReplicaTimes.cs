using System.Globalization;
using SimClr.Core.Runtime;

namespace SimClr.Core.Replica;

/// <summary>
/// Milliseconds a replica spent on its own work, by phase: augmenting views, the forward pass, the gradient-caching
/// re-forward (re-augmentation included; 0 without chunks), the backward pass, the optimiser step, the rest of its
/// calls (serialise: bytes to and from tensors, flattening or installing the gradient, the parameter checksum), and
/// the ring all-reduce with the other workers (ring: what is left of it once backward has ended, waiting for the other
/// workers included; the buckets summed during backward are not counted again; 0 with the star; with NCCL, every
/// bucket's sum on the device, which runs between backward's kernels).
/// What the calls cost beyond this (the wire, waiting for the worker's torch thread) the coordinator measures.
/// Beside the times, the replica's host synchronisations in the calls (<see cref="Syncs"/>).
/// </summary>
public sealed record ReplicaTimes(double AugmentMs, double ForwardMs, double ReforwardMs, double BackwardMs, double OptimizerMs, double SerializeMs,
    double RingMs = 0)
{
    public static readonly ReplicaTimes None = new(0, 0, 0, 0, 0, 0);

    /// <summary>The replica's host synchronisations in the calls (<see cref="HostSyncs"/>): counts, not times.</summary>
    public SyncCounts Syncs { get; init; } = SyncCounts.None;

    /// <summary>The phases were timed without waiting for an asynchronous device (CUDA, between timePhasesEverySteps):
    /// they are the host's time to queue the work, not the device's to do it.</summary>
    public bool Unsynchronized { get; init; }

    public double TotalMs => AugmentMs + ForwardMs + ReforwardMs + BackwardMs + OptimizerMs + SerializeMs + RingMs;

    public static ReplicaTimes operator +(ReplicaTimes a, ReplicaTimes b) => new(a.AugmentMs + b.AugmentMs, a.ForwardMs + b.ForwardMs,
        a.ReforwardMs + b.ReforwardMs, a.BackwardMs + b.BackwardMs, a.OptimizerMs + b.OptimizerMs, a.SerializeMs + b.SerializeMs, a.RingMs + b.RingMs)
    {
        Syncs = a.Syncs + b.Syncs,
        Unsynchronized = a.Unsynchronized || b.Unsynchronized,
    };

    /// <summary>The wire form (the worker's "simclr-times" gRPC trailer): "augment=1.25;forward=3.5;...;syncs_read=1;...".</summary>
    public string Format() => string.Join(';', Fields().Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Name}={f.Ms:0.###}"))
        .Concat(Counts().Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Name}={c.Count}"))));

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
        long Count(string name) => (long)Math.Min(Get(name), long.MaxValue);
        return new ReplicaTimes(Get("augment"), Get("forward"), Get("reforward"), Get("backward"), Get("optimizer"), Get("serialize"), Get("ring"))
        {
            Syncs = new SyncCounts(Count("syncs_read"), Count("syncs_transport"), Count("syncs_timer")),
            Unsynchronized = Get("unsynchronized") > 0,
        };
    }

    private IEnumerable<(string Name, double Ms)> Fields() =>
        [("augment", AugmentMs), ("forward", ForwardMs), ("reforward", ReforwardMs), ("backward", BackwardMs), ("optimizer", OptimizerMs), ("serialize", SerializeMs), ("ring", RingMs)];

    private IEnumerable<(string Name, long Count)> Counts() =>
        [("syncs_read", Syncs.Reads), ("syncs_transport", Syncs.Transport), ("syncs_timer", Syncs.Timer), .. Unsynchronized ? [("unsynchronized", 1L)] : Array.Empty<(string, long)>()];
}
