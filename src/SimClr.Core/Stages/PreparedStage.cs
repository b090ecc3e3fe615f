using SimClr.Core.Config;
using SimClr.Core.Data;

namespace SimClr.Core.Stages;

/// <summary>A stage ready to run (<see cref="StageRunner.PrepareAsync"/>): its config, its data loaded, and the training
/// images it uses (the class-balanced labelled subset at labelFraction &lt; 1).</summary>
public sealed class PreparedStage(RunConfig config, TrainTestSplit data, ImageDataSet train, ImageDataSet? subset) : IDisposable
{
    public RunConfig Config { get; } = config;

    /// <summary>The images the stage trains on: what workers must be told about when they join.</summary>
    public ImageDataSet Train { get; } = train;

    public ImageDataSet Test => data.Test;

    /// <summary>The labelled training images: the kNN monitor's bank (the same as <see cref="Train"/> unless
    /// pre-training also takes unlabelled images).</summary>
    public ImageDataSet Bank => data.Train;

    /// <summary>The images a stage trains on, the same in the coordinator and in a worker that opens the data itself:
    /// the class-balanced labelled subset at labelFraction &lt; 1 (a copy, returned as <c>Subset</c> for its owner to
    /// dispose), else every training image (pre-training: the unlabelled ones too, where the data set has them).</summary>
    public static (ImageDataSet Train, ImageDataSet? Subset) TrainingImages(RunConfig config, TrainTestSplit data, Action<string>? message = null)
    {
        if (config.Stage != Stage.Pretrain && config.LabelFraction < 1)
        {
            var subset = data.Train.Subset(LabelFraction.ClassBalanced(data.Train.Labels, config.LabelFraction, config.Seed), $"{data.Train.Name}-{config.LabelFraction:P0}-labels");
            message?.Invoke($"using {subset.Count} labelled images ({config.LabelFraction:P0}, class-balanced)");
            return (subset, subset);
        }
        var train = config.Stage == Stage.Pretrain ? data.Pretrain : data.Train;
        if (config.Stage == Stage.Pretrain && !ReferenceEquals(train, data.Train))
            message?.Invoke($"pre-training on {train.Count} images ({data.Train.Count} labelled, {train.Count - data.Train.Count} unlabelled); the kNN monitor's bank is the labelled ones");
        return (train, null);
    }

    /// <summary>What a worker of a data.sharedStorage run opens: the run's data set from <paramref name="root"/> (null:
    /// the config's), never downloaded (the coordinator has it by then), and the training images the stage uses.</summary>
    public static async Task<PreparedStage> OpenSharedAsync(RunConfig config, string? root, Action<string>? message = null, CancellationToken cancel = default)
    {
        var options = config.Data with { Root = root ?? config.Data.Root, Download = false };
        var data = await options.LoadAsync(cancel: cancel, log: message);
        try
        {
            var (train, subset) = TrainingImages(config, data, message);
            return new PreparedStage(config with { Data = options }, data, train, subset);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        subset?.Dispose();
        data.Dispose();
    }
}
