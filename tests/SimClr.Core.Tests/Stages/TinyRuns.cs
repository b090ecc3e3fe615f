using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;

namespace SimClr.Core.Tests.Stages;

/// <summary>Configs for runs that take seconds on 2 cores: narrow nets, a few dozen generated images.</summary>
internal static class TinyRuns
{
    public static RunConfig Config(Stage stage, string runsFolder, string name) => new()
    {
        Stage = stage,
        Seed = 3,
        Threads = 1,
        Data = new DataOptions(DataOptions.SyntheticShapes, SyntheticTrain: 64, SyntheticTest: 20, SyntheticSeed: 1),
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
        Augment = stage == Stage.Pretrain ? new AugmentationOptions() : new AugmentationOptions { JitterProbability = 0, GrayscaleProbability = 0 },
        Optimizer = new OptimizerOptions { Kind = stage == Stage.Pretrain ? OptimizerKind.Lars : OptimizerKind.Sgd, BaseLearningRate = stage == Stage.Pretrain ? 1.0 : 0.05, Scaling = LearningRateScaling.None },
        Epochs = 3,
        BatchSize = 16,
        WarmupEpochs = 1,
        KnnEveryEpochs = 1,
        KnnK = 10,
        CheckpointEverySteps = 5,
        LogEverySteps = 1,
        RunsFolder = runsFolder,
        RunName = name,
    };
}
