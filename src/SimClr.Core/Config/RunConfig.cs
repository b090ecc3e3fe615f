using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Data;
using SimClr.Core.Optim;

namespace SimClr.Core.Config;

/// <summary>Which training stage a run config drives.</summary>
public enum Stage
{
    Pretrain,
    LinearEval,
    Finetune,
    Supervised,
}

/// <summary>How BatchNorm normalises during pre-training.</summary>
public enum BatchNormStatistics
{
    /// <summary>Statistics of each forward batch (standard; per device/shard in distributed runs).</summary>
    Batch,

    /// <summary>Running statistics only, never updated: outputs do not depend on the batch. For equivalence tests
    /// and debugging (any sharding gives the same maths), not for real training.</summary>
    Frozen,
}

/// <summary>Network shape; input channels come from the data set.</summary>
public sealed record ModelOptions
{
    public BatchNormStatistics BatchNorm { get; init; } = BatchNormStatistics.Batch;

    public double Width { get; init; } = 1.0;

    public int ProjectionHidden { get; init; } = 2048;

    public int ProjectionDim { get; init; } = 128;
}

/// <summary>Which views share a BatchNorm batch when a step is split over workers or chunks.</summary>
public enum BatchNormGroups
{
    /// <summary><see cref="Cross"/> when a step is split (workers x chunks > 1), else <see cref="Local"/>.</summary>
    Auto,

    /// <summary>Both views of an image in the same shard/chunk (the seed's per-device BN).</summary>
    Local,

    /// <summary>View 0 and view 1 of an image in different shards/chunks: no BN batch holds a positive pair, so the
    /// network cannot match views through batch statistics (the paper's reason for global BN), at no cost.</summary>
    Cross,
}

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

/// <summary>What a distributed run does when a worker is lost (dies, hangs, disconnects).</summary>
public enum FaultPolicy
{
    /// <summary>Redo the step in flight over the surviving workers: the same global batch and views, so the same maths.</summary>
    Elastic,

    /// <summary>Stop with a clear message; the last checkpoint stays valid.</summary>
    FailFast,
}

/// <summary>What a step with a non-finite loss or gradient does (it is never applied either way).</summary>
public enum NonFinitePolicy
{
    /// <summary>Skip the step (the batch is passed over, the weights stay as they were), count it, and stop once
    /// <see cref="FaultOptions.MaxSkippedSteps"/> is exceeded.</summary>
    Skip,

    /// <summary>Stop at the first one.</summary>
    Stop,
}

public sealed record FaultOptions
{
    public FaultPolicy Policy { get; init; } = FaultPolicy.Elastic;

    /// <summary>Below this many workers the run waits up to <see cref="JoinWaitSeconds"/> for lost workers to come
    /// back (or `simclr launch` to restart them), then stops with a checkpoint (elastic policy).</summary>
    public int MinWorkers { get; init; } = 1;

    /// <summary>How long a run below <see cref="MinWorkers"/> waits for joiners before it stops.</summary>
    public double JoinWaitSeconds { get; init; } = 60;

    public NonFinitePolicy NonFinite { get; init; } = NonFinitePolicy.Skip;

    /// <summary>With <see cref="NonFinitePolicy.Skip"/>: skipped steps allowed over the run; one more stops it.</summary>
    public int MaxSkippedSteps { get; init; } = 10;

    /// <summary>While a call is in flight the coordinator checks the worker's health this often ...</summary>
    public double HeartbeatSeconds { get; init; } = 2;

    /// <summary>... and counts it lost after this many missed checks in a row (a hung or stopped process answers none).</summary>
    public int HeartbeatMisses { get; init; } = 3;

    /// <summary>How often (seconds) a lost worker is probed between steps; when it is back it joins again, receives
    /// the full state and takes shards from the next step on. 0: never.</summary>
    public double RejoinSeconds { get; init; } = 5;
}

/// <summary>How the workers' gradients are summed (<see cref="Training.DataParallelStep"/>).</summary>
public enum ReductionMethod
{
    /// <summary>The ring between workers when every replica is a worker that can take part, else the star.</summary>
    Auto,

    /// <summary>Bandwidth-optimal ring all-reduce between the workers (<see cref="Collectives.RingAllReduce"/>); the
    /// coordinator moves no gradient and its traffic does not grow with the workers.</summary>
    Ring,

    /// <summary>Every gradient to the coordinator, the sum back to every worker (traffic 2N x the gradient through it).</summary>
    Star,
}

public sealed record ReductionOptions
{
    public ReductionMethod Method { get; init; } = ReductionMethod.Auto;

    public ReducePrecision Precision { get; init; } = ReducePrecision.Exact;

    /// <summary>Values per piece the ring streams (pipelining granularity); 0: <see cref="Collectives.RingAllReduce.DefaultPieceElements"/>.</summary>
    public int PieceElements { get; init; }

    /// <summary>The ring sums the gradient in buckets of about this many megabytes (10^6 bytes) of float32, whole stages
    /// of the network, each while backward is still computing the earlier stages (PyTorch DDP's overlap; its default
    /// cap is 25 MB); 0: one ring after the whole backward. Only the last chunk's backward overlaps with gradient caching.</summary>
    public double BucketMegabytes { get; init; } = 25;

    /// <summary><see cref="BucketMegabytes"/> in bytes.</summary>
    public long BucketBytes => (long)Math.Round(BucketMegabytes * 1e6);
}

public sealed record LossOptions
{
    public double Temperature { get; init; } = 0.5;

    /// <summary>The seed's clamp(min=1e-7) on similarities; not the paper's loss. Off by default.</summary>
    public bool SeedSimilarityClamp { get; init; }
}

/// <summary>
/// One run of one stage: the single source of truth for every hyper-parameter. Loaded from JSON (unknown keys are
/// errors), overridden from the command line, validated as a whole, and written resolved into the run directory.
/// Defaults are the seed's recipe (batch 256, temperature 0.5, 128-d projection, full-width ResNet-18).
/// </summary>
public sealed record RunConfig
{
    /// <summary>What this config is for, in a sentence (configs/ states it for each file).</summary>
    public string? Description { get; init; }

    public Stage Stage { get; init; } = Stage.Pretrain;

    public ulong Seed { get; init; }

    /// <summary>cpu, cuda, cuda:1, ...</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>torch intra-op threads; 0 for one per core.</summary>
    public int Threads { get; init; }

    public DataOptions Data { get; init; } = new();

    /// <summary>Fraction of labelled training images for finetune/linear-eval/supervised (class-balanced, seeded).</summary>
    public double LabelFraction { get; init; } = 1.0;

    public ModelOptions Model { get; init; } = new();

    public AugmentationOptions Augment { get; init; } = new();

    public LossOptions Loss { get; init; } = new();

    public BatchingOptions Batching { get; init; } = new();

    public FaultOptions Faults { get; init; } = new();

    public ReductionOptions Reduction { get; init; } = new();

    public OptimizerOptions Optimizer { get; init; } = new();

    public int Epochs { get; init; } = 100;

    public int BatchSize { get; init; } = 256;

    public double WarmupEpochs { get; init; } = 10;

    /// <summary>kNN monitor on the test split every this many epochs (0: off; always after the last epoch when on).</summary>
    public int KnnEveryEpochs { get; init; } = 10;

    public int KnnK { get; init; } = 200;

    public double KnnTemperature { get; init; } = 0.1;

    /// <summary>Write a checkpoint every this many steps (and at the end); 0 for the end only.</summary>
    public int CheckpointEverySteps { get; init; } = 500;

    public int KeepCheckpoints { get; init; } = 3;

    public int LogEverySteps { get; init; } = 10;

    /// <summary>Checkpoint or exported backbone to start from (linear-eval, finetune); for linear-eval, "random" probes an untrained backbone.</summary>
    public string? Pretrained { get; init; }

    public const string RandomBackbone = "random";

    /// <summary>Folder that holds run directories.</summary>
    public string RunsFolder { get; init; } = "runs";

    /// <summary>Name of this run's directory; default: stage and time.</summary>
    public string? RunName { get; init; }

    /// <summary>Upper bounds past which a value would overflow or allocate absurdly (checked before anything runs).</summary>
    public const double MaxWidth = 8;

    public const int MaxProjection = 65_536;

    public const int MaxEpochs = 1_000_000;

    public const int MaxBatchSize = 1 << 20;

    public const int MaxThreads = 1024;

    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        problems.AddRange(Data.Problems().Select(p => "data: " + p));
        problems.AddRange(Augment.Problems().Select(p => "augment: " + p));
        problems.AddRange(Optimizer.Problems());
        if (string.IsNullOrWhiteSpace(Device)) problems.Add("device must be cpu, cuda or cuda:N");
        if (Threads < 0) problems.Add($"threads must be >= 0 (got {Threads})");
        if (!(LabelFraction > 0 && LabelFraction <= 1)) problems.Add($"labelFraction must be in (0, 1] (got {LabelFraction})");
        if (Threads > MaxThreads) problems.Add($"threads must be at most {MaxThreads} (got {Threads}; 0: one per core)");
        if (!(Model.Width > 0 && Model.Width <= MaxWidth)) problems.Add($"model.width must be in (0, {MaxWidth}] (got {Model.Width}; 1 is the full ResNet-18, {MaxWidth} already has {MaxWidth * 512} channels in its last stage)");
        if (Model.ProjectionHidden < 1 || Model.ProjectionDim < 1 || Model.ProjectionHidden > MaxProjection || Model.ProjectionDim > MaxProjection)
            problems.Add($"model.projectionHidden and model.projectionDim must be in [1, {MaxProjection}] (got {Model.ProjectionHidden}, {Model.ProjectionDim})");
        if (!(Loss.Temperature > 0) || double.IsInfinity(Loss.Temperature)) problems.Add($"loss.temperature must be > 0 (got {Loss.Temperature})");
        if (Batching.Chunks < 1) problems.Add($"batching.chunks must be >= 1 (got {Batching.Chunks})");
        if (Stage == Stage.Pretrain && BatchSize >= 1 && Batching.Chunks > BatchSize) problems.Add($"batching.chunks ({Batching.Chunks}) cannot exceed batchSize ({BatchSize})");
        if (Batching.Groups < 0) problems.Add($"batching.groups must be >= 0 (got {Batching.Groups}; 0 means workers x chunks)");
        if (Batching.Groups > 0 && Batching.Chunks > 1) problems.Add($"set batching.groups ({Batching.Groups}, for all workers) or batching.chunks ({Batching.Chunks}, per worker), not both");
        if (BatchSize >= 1 && Batching.Groups > BatchSize) problems.Add($"batching.groups ({Batching.Groups}) cannot exceed batchSize ({BatchSize})");
        if (Faults.MinWorkers < 1) problems.Add($"faults.minWorkers must be >= 1 (got {Faults.MinWorkers})");
        if (!(Faults.HeartbeatSeconds > 0) || Faults.HeartbeatSeconds > 600) problems.Add($"faults.heartbeatSeconds must be in (0, 600] (got {Faults.HeartbeatSeconds})");
        if (!(Faults.RejoinSeconds >= 0)) problems.Add($"faults.rejoinSeconds must be >= 0 (got {Faults.RejoinSeconds})");
        if (!(Faults.JoinWaitSeconds >= 0) || double.IsInfinity(Faults.JoinWaitSeconds)) problems.Add($"faults.joinWaitSeconds must be >= 0 (got {Faults.JoinWaitSeconds})");
        if (Faults.MaxSkippedSteps < 0) problems.Add($"faults.maxSkippedSteps must be >= 0 (got {Faults.MaxSkippedSteps})");
        if (Faults.HeartbeatMisses < 1) problems.Add($"faults.heartbeatMisses must be >= 1 (got {Faults.HeartbeatMisses})");
        if (Reduction.Method == ReductionMethod.Star && Reduction.Precision != ReducePrecision.Exact)
            problems.Add($"reduction.precision {Reduction.Precision} applies to the ring; the star always sums exactly (set reduction.method to ring or auto)");
        if (Reduction.PieceElements < 0 || Reduction.PieceElements > Collectives.RingAllReduce.MaxPieceElements)
            problems.Add($"reduction.pieceElements must be in [0, {Collectives.RingAllReduce.MaxPieceElements}] (got {Reduction.PieceElements}; 0: the default)");
        if (!double.IsFinite(Reduction.BucketMegabytes) || Reduction.BucketMegabytes < 0 || Reduction.BucketMegabytes > 1e6)
            problems.Add($"reduction.bucketMegabytes must be in [0, 1000000] (got {Reduction.BucketMegabytes}; 0: one bucket, no overlap with backward)");
        if (Epochs < 1) problems.Add($"epochs must be >= 1 (got {Epochs})");
        if (Epochs > MaxEpochs) problems.Add($"epochs must be at most {MaxEpochs} (got {Epochs})");
        if (BatchSize < 1) problems.Add($"batchSize must be >= 1 (got {BatchSize})");
        if (BatchSize > MaxBatchSize) problems.Add($"batchSize must be at most {MaxBatchSize} (got {BatchSize})");
        if (Stage == Stage.Pretrain && BatchSize == 1) problems.Add("batchSize must be >= 2 for contrastive pre-training (negatives come from the batch)");
        if (!(WarmupEpochs >= 0)) problems.Add($"warmupEpochs must be >= 0 (got {WarmupEpochs})");
        if (KnnEveryEpochs < 0) problems.Add($"knnEveryEpochs must be >= 0 (got {KnnEveryEpochs})");
        if (KnnK < 1) problems.Add($"knnK must be >= 1 (got {KnnK})");
        if (!(KnnTemperature > 0)) problems.Add($"knnTemperature must be > 0 (got {KnnTemperature})");
        if (CheckpointEverySteps < 0) problems.Add($"checkpointEverySteps must be >= 0 (got {CheckpointEverySteps})");
        if (KeepCheckpoints < 1) problems.Add($"keepCheckpoints must be >= 1 (got {KeepCheckpoints})");
        if (LogEverySteps < 1) problems.Add($"logEverySteps must be >= 1 (got {LogEverySteps})");
        if (Stage == Stage.LinearEval && string.IsNullOrEmpty(Pretrained)) problems.Add("linear-eval needs pretrained: a pre-training checkpoint, an exported backbone, or \"random\" for the untrained baseline");
        if (RunName is not null && (RunName.Length == 0 || RunName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || RunName.Contains('/')))
            problems.Add($"runName '{RunName}' is not a valid folder name");
        return problems;
    }
}
