using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Data;

public class SyntheticShapesTests
{
    [Fact]
    public void Same_seed_same_images_other_seed_other_images()
    {
        using var a = SyntheticShapes.Generate(200, 50, seed: 3);
        using var b = SyntheticShapes.Generate(200, 50, seed: 3);
        using var c = SyntheticShapes.Generate(200, 50, seed: 4);
        Assert.True(a.Train.Images.eq(b.Train.Images).all().item<bool>());
        Assert.Equal(a.Train.Labels, b.Train.Labels);
        Assert.False(a.Train.Images.eq(c.Train.Images).all().item<bool>());
        Assert.False(a.Train.Images[..50].eq(a.Test.Images).all().item<bool>()); // test is a different stream
    }

    [Fact]
    public void Ten_balanced_classes_of_32x32_rgb_with_normalisation_from_the_data()
    {
        using var split = SyntheticShapes.Generate(1000, 100, seed: 0);
        Assert.Equal(new long[] { 1000, 3, 32, 32 }, split.Train.Images.shape);
        Assert.All(Enumerable.Range(0, 10), k => Assert.Equal(100, split.Train.Labels.Count(l => l == k)));
        Assert.Equal(10, split.Train.ClassNames.Count);
        using var pixels = split.Train.Images.to_type(ScalarType.Float64).div(255);
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(pixels[.., c].mean().item<double>(), split.Train.Mean[c], 3);
            Assert.Equal(pixels[.., c].std().item<double>(), split.Train.Std[c], 2);
        }
    }

    [Fact]
    public void Images_of_one_class_vary_in_colour_and_place()
    {
        using var split = SyntheticShapes.Generate(500, 10, seed: 1);
        long[] disks = Enumerable.Range(0, 500).Where(i => split.Train.Labels[i] == 0).Select(i => (long)i).ToArray();
        using var scope = NewDisposeScope();
        var images = split.Train.Images.index_select(0, tensor(disks)).to_type(ScalarType.Float32).div(255);
        // mean colour per image varies a lot across the class ...
        Assert.True(images.mean([2, 3]).std(0).min().item<float>() > 0.1);
        // ... and so does every pixel (position, size, rotation, background)
        Assert.True(images.std(0).mean().item<float>() > 0.2);
    }
}
