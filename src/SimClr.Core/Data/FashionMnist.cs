using static TorchSharp.torch;

namespace SimClr.Core.Data;

/// <summary>Fashion-MNIST (28x28 grey, 10 classes) from IDX files; Debian's dataset-fashion-mnist installs them in <see cref="DefaultFolder"/>.</summary>
public static class FashionMnist
{
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";
    public static readonly string[] ClassNames = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];
    public static readonly double[] Mean = [0.2860];
    public static readonly double[] Std = [0.3530];

    public static TrainTestSplit Load(string folder = DefaultFolder)
    {
        if (!Directory.Exists(folder))
            throw new DataSetException($"Fashion-MNIST is not in {folder}. On Debian/Ubuntu: apt-get install dataset-fashion-mnist; "
                + "or put train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz) there.");
        return new TrainTestSplit(LoadPart(folder, "train", "fashion-mnist-train"), LoadPart(folder, "t10k", "fashion-mnist-test"));
    }

    private static ImageDataSet LoadPart(string folder, string prefix, string name)
    {
        string images = Find(folder, $"{prefix}-images-idx3-ubyte");
        string labelsPath = Find(folder, $"{prefix}-labels-idx1-ubyte");
        var (dims, pixels) = IdxReader.Read(images, 3);
        var (labelDims, labelBytes) = IdxReader.Read(labelsPath, 1);
        if (labelDims[0] != dims[0])
            throw new DataSetException($"{labelsPath}: {labelDims[0]} labels for {dims[0]} images in {images}");
        var labels = new int[labelBytes.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            if (labelBytes[i] >= ClassNames.Length)
                throw new DataSetException($"{labelsPath}: label {labelBytes[i]} out of range 0..{ClassNames.Length - 1} at item {i} (byte {8 + i})");
            labels[i] = labelBytes[i];
        }
        return new ImageDataSet(name, tensor(pixels, [dims[0], 1, dims[1], dims[2]]), labels, ClassNames, Mean, Std);
    }

    private static string Find(string folder, string stem)
    {
        string gz = Path.Combine(folder, stem + ".gz");
        return File.Exists(gz) ? gz : Path.Combine(folder, stem);
    }
}
