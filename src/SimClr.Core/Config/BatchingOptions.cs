namespace SimClr.Core.Config;

/// <summary>How one step's views are split across the workers and, within a worker, into forward passes.</summary>
public sealed record BatchingOptions
{
    /// <summary>Forward passes per worker per step (gradient caching: forward all chunks without a graph, then
    /// re-forward each with a graph and back-propagate its slice of dL/dz), so a large batch fits fixed memory.</summary>
    public int Chunks { get; init; } = 1;

    /// <summary>
    /// The step's forward passes over ALL workers (each its own BatchNorm batch), fixed whatever the number of workers:
    /// worker w of N takes groups wG/N .. (w+1)G/N - 1. With it set, losing, adding or restarting workers changes who
    /// computes what but never the maths: the same views meet in the same BN batches and the gradient sum is exact
    /// (partials summed in float64, rounded once), so the parameters are bit-identical to an undisturbed run's.
    /// 0 (default): the starting workers x <see cref="Chunks"/>, kept for the run (set it to resume on another number
    /// of workers with the same maths).
    /// </summary>
    public int Groups { get; init; }

    public BatchNormGroups BatchNorm { get; init; } = BatchNormGroups.Auto;
}
