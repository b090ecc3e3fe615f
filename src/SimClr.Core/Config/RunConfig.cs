using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Data;
using SimClr.Core.Optim;

namespace SimClr.Core.Config;

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

    /// <summary>fp32 (default) or bf16: what the convolutions and linear layers compute in; weights, gradients, optimiser,
    /// batch norm and losses stay float32 (<see cref="Models.ComputePrecision"/>).</summary>
    public Models.ComputePrecision Precision { get; init; } = Models.ComputePrecision.Fp32;

    public AugmentationOptions Augment { get; init; } = new();

    public LossOptions Loss { get; init; } = new();

    public BatchingOptions Batching { get; init; } = new();

    public FaultOptions Faults { get; init; } = new();

    public ReductionOptions Reduction { get; init; } = new();

    public CoordinatorOptions Coordinator { get; init; } = new();

    public OptimizerOptions Optimizer { get; init; } = new();

    public int Epochs { get; init; } = 100;

    public int BatchSize { get; init; } = 256;

    public double WarmupEpochs { get; init; } = 10;

    /// <summary>kNN monitor on the test split every this many epochs (0: off; always after the last epoch when on).</summary>
    public int KnnEveryEpochs { get; init; } = 10;

    public int KnnK { get; init; } = 200;

    /// <summary>linear-eval: train the classifier on features of random crops and flips of the training images, computed
    /// every epoch (the paper's protocol, one frozen forward pass per image per epoch), instead of on features of the
    /// plain images extracted once.</summary>
    public bool LinearEvalAugment { get; init; }

    /// <summary>Test accuracy of finetune and supervised every this many epochs (always after the last): each costs a
    /// forward pass over the whole test split, which on a small labelled subset takes longer than the epoch itself.</summary>
    public int TestEveryEpochs { get; init; } = 1;

    public double KnnTemperature { get; init; } = 0.1;

    /// <summary>Write a checkpoint every this many steps (and at the end); 0 for the end only.</summary>
    public int CheckpointEverySteps { get; init; } = 500;

    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>With several replicas, compare the SHA-256 of all their parameters every this many steps (and at every
    /// checkpoint); the other steps compare fingerprints computed on their devices (one read each). 0: at checkpoints only.</summary>
    public int ChecksumEverySteps { get; init; } = 100;

    public int LogEverySteps { get; init; } = 10;

    /// <summary>On CUDA, time the replicas' phases exactly on one step in this many: each phase boundary then waits for
    /// the GPU (about 7 synchronisations a step, 2 more a ring bucket), so the other steps run without them. 1: every
    /// step. The CPU times every step exactly at no cost.</summary>
    public int TimePhasesEverySteps { get; init; } = 10;

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

    /// <summary>The backbone this config builds for images of <paramref name="inputChannels"/> channels (the stem
    /// resolved by the views' size, augment.outputSize).</summary>
    public Models.ResNetOptions Backbone(int inputChannels) =>
        Models.ResNetOptions.For(Model.Width, inputChannels, Model.Arch, Model.Stem, Augment.OutputSize);

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
        if (Reduction.Method == ReductionMethod.Nccl && Reduction.Precision == ReducePrecision.Bfloat16)
            problems.Add("reduction.precision bfloat16 applies to the ring; NCCL sums the gradient in float32 (leave reduction.precision at exact or float32)");
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
        if (TestEveryEpochs < 1) problems.Add($"testEveryEpochs must be >= 1 (got {TestEveryEpochs}; 1: after every epoch)");
        if (KnnK < 1) problems.Add($"knnK must be >= 1 (got {KnnK})");
        if (!(KnnTemperature > 0)) problems.Add($"knnTemperature must be > 0 (got {KnnTemperature})");
        if (CheckpointEverySteps < 0) problems.Add($"checkpointEverySteps must be >= 0 (got {CheckpointEverySteps})");
        if (ChecksumEverySteps < 0) problems.Add($"checksumEverySteps must be >= 0 (got {ChecksumEverySteps}; 0: at checkpoints only)");
        if (string.IsNullOrWhiteSpace(Coordinator.Device)) problems.Add("coordinator.device must be auto, cpu, cuda or cuda:N");
        if (KeepCheckpoints < 1) problems.Add($"keepCheckpoints must be >= 1 (got {KeepCheckpoints})");
        if (TimePhasesEverySteps < 1) problems.Add($"timePhasesEverySteps must be >= 1 (got {TimePhasesEverySteps}; 1: every step)");
        if (LogEverySteps < 1) problems.Add($"logEverySteps must be >= 1 (got {LogEverySteps})");
        if (Stage == Stage.KnnEval && string.IsNullOrEmpty(Pretrained)) problems.Add("knn-eval needs pretrained: a pre-training checkpoint, an exported backbone, or \"random\" for the untrained baseline");
        if (Stage == Stage.LinearEval && string.IsNullOrEmpty(Pretrained)) problems.Add("linear-eval needs pretrained: a pre-training checkpoint, an exported backbone, or \"random\" for the untrained baseline");
        if (RunName is not null && (RunName.Length == 0 || RunName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || RunName.Contains('/')))
            problems.Add($"runName '{RunName}' is not a valid folder name");
        return problems;
    }
}
