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

    public void Dispose()
    {
        subset?.Dispose();
        data.Dispose();
    }
}
