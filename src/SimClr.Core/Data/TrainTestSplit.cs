namespace SimClr.Core.Data;

/// <summary>A data set's standard train and test parts. Owns both.</summary>
public sealed class TrainTestSplit(ImageDataSet train, ImageDataSet test) : IDisposable
{
    public ImageDataSet Train { get; } = train;

    public ImageDataSet Test { get; } = test;

    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
    }
}
