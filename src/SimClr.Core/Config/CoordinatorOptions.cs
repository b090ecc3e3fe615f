namespace SimClr.Core.Config;

/// <summary>The coordinator process's own choices (it drives the replicas and computes the global loss).</summary>
public sealed record CoordinatorOptions
{
    public const string Auto = "auto";

    /// <summary>Where the global loss and dL/dz are computed, and, in a run with workers, where this process keeps its
    /// copy of the model (checkpoints, kNN monitor): cpu, cuda, cuda:N, or auto. Auto: in a single-process run the
    /// replica's device (the run's <c>device</c>); with workers, the first CUDA device when this process has one, else
    /// the CPU, so a coordinator without a GPU drives GPU workers as they are.</summary>
    public string Device { get; init; } = Auto;

    /// <summary>The device <see cref="Device"/> means: <paramref name="replicaDevice"/> for a single-process run,
    /// <paramref name="hasCuda"/> deciding auto for a run with workers.</summary>
    public string Resolve(string replicaDevice, bool withWorkers, bool hasCuda) =>
        Device != Auto ? Device : !withWorkers ? replicaDevice : hasCuda ? "cuda:0" : "cpu";
}
