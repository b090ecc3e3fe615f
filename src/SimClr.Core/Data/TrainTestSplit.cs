namespace SimClr.Core.Data;

/// <summary>A data set's standard train and test parts, and where a data set has unlabelled images (STL-10), the
/// images pre-training uses. Owns all.</summary>
public sealed class TrainTestSplit(ImageDataSet train, ImageDataSet test, ImageDataSet? pretrain = null) : IDisposable
{
    public ImageDataSet Train { get; } = train;

    public ImageDataSet Test { get; } = test;

    /// <summary>The images contrastive pre-training takes: the training images and any unlabelled ones (their labels
    /// mean nothing; the kNN monitor's bank is <see cref="Train"/>).</summary>
    public ImageDataSet Pretrain => pretrain ?? Train;

    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
        pretrain?.Dispose();
    }
}
