using SimClr.Core.Models;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Models;

/// <summary>
/// The convolutions that oneDNN got wrong on an AMD EPYC (AVX-512, 2 threads): libtorch's own conv2d on these shapes
/// gave relative errors of 0.04 to 0.6, or NaN, in most of 30 trials against float64 (3x3 backward-data with 8, 12 or 24
/// output channels; 3x3 forward with 24 input channels), and the width-0.125 network's gradients differed from one
/// backward to the next, NaN among them. <see cref="Conv2d"/> must give float64's values on every trial, with 2 threads.
/// </summary>
public class OneDnnConvolutionTests
{
    [Theory]
    [InlineData(8, 8, 32, 3, 1, 1)]    // width 0.125, layer1
    [InlineData(8, 16, 32, 3, 2, 1)]   // width 0.125, layer2.0.conv1
    [InlineData(8, 16, 32, 1, 2, 0)]   // width 0.125, layer2.0.downsample (oneDNN#6035's strided 1x1)
    [InlineData(12, 12, 16, 3, 1, 1)]
    [InlineData(24, 24, 16, 3, 1, 1)]  // width 0.375, layer1
    [InlineData(24, 48, 16, 3, 2, 1)]
    [InlineData(16, 24, 16, 3, 1, 1)]
    [InlineData(24, 16, 16, 3, 1, 1)]
    [InlineData(3, 8, 32, 3, 1, 1)]    // the stem at width 0.125
    [InlineData(1, 8, 28, 3, 1, 1)]    // Fashion-MNIST's stem at width 0.125
    [InlineData(3, 64, 32, 3, 1, 1)]   // the full-width stem: 3 input channels unpadded, whole output blocks
    [InlineData(3, 16, 32, 3, 1, 1)]   // the quickstart's stem
    [InlineData(4, 16, 16, 3, 1, 1)]   // 4 input channels are padded
    [InlineData(16, 32, 16, 3, 2, 1)]  // whole blocks: the unpadded path
    [InlineData(256, 1024, 8, 1, 2, 0)]  // resnet50 at half width, layer4.0.downsample: SIGFPE in oneDNN's input gradient
    [InlineData(1024, 2048, 8, 1, 2, 0)] // resnet50 at full width, layer4.0.downsample: the same
    public void A_convolution_gives_float64s_output_and_gradients_on_every_trial_with_2_threads(int inChannels, int outChannels, int side, int kernel, int stride, int padding)
    {
        set_num_threads(2);
        manual_seed(1);
        using var conv = new Conv2d(inChannels, outChannels, kernel, stride, padding);
        for (int trial = 0; trial < 12; trial++)
        {
            using var scope = NewDisposeScope();
            using (no_grad()) conv.Weight.copy_(randn(outChannels, inChannels, kernel, kernel).mul_(0.3));
            conv.Weight.grad?.zero_();
            var x = randn(16, inChannels, side, side).requires_grad_(true);
            var y = conv.forward(x);
            var dy = randn_like(y);
            y.backward([dy]);

            var x64 = x.detach().to(float64).requires_grad_(true);
            var w64 = conv.Weight.detach().to(float64).requires_grad_(true);
            var y64 = nn.functional.conv2d(x64, w64, null, [stride, stride], [padding, padding]); // float64: libtorch's own kernels, not oneDNN
            y64.backward([dy.to(float64)]);

            AssertClose(y, y64, "output", trial);
            AssertClose(conv.Weight.grad!, w64.grad!, "weight gradient", trial);
            AssertClose(x.grad!, x64.grad!, "input gradient", trial);
        }
    }

    private static void AssertClose(Tensor actual, Tensor expected, string what, int trial)
    {
        Assert.Equal(expected.shape, actual.shape);
        double error = actual.detach().to(float64).sub(expected).abs().max().item<double>();
        double scale = expected.abs().max().item<double>();
        Assert.True(error <= 1e-5 * scale, $"trial {trial}: {what} is off by {error} (largest value {scale})");
    }

    [Fact]
    public void Only_partly_filled_channel_blocks_are_padded()
    {
        Assert.False(new Conv2d(64, 128, 3).PadsOnCpu);
        Assert.False(new Conv2d(16, 32, 1, stride: 2).PadsOnCpu);
        Assert.False(new Conv2d(3, 64, 3).PadsOnCpu);
        Assert.True(new Conv2d(3, 8, 3).PadsOnCpu);
        Assert.True(new Conv2d(4, 16, 3).PadsOnCpu);
        Assert.True(new Conv2d(8, 16, 1, stride: 2).PadsOnCpu);
        Assert.True(new Conv2d(32, 24, 3).PadsOnCpu);
        Assert.Equal(32, Conv2d.WholeBlocks(24));
        Assert.Equal(16, Conv2d.WholeBlocks(16));
    }

    [Fact]
    public void Only_strided_pointwise_convolutions_wider_than_512_subsample()
    {
        Assert.True(new Conv2d(256, 1024, 1, stride: 2).SubsamplesOnCpu);
        Assert.True(new Conv2d(1024, 2048, 1, stride: 2).SubsamplesOnCpu);
        Assert.False(new Conv2d(256, 512, 1, stride: 2).SubsamplesOnCpu); // resnet18/34 at full width keep their kernel and bits
        Assert.False(new Conv2d(256, 1024, 1).SubsamplesOnCpu);
        Assert.False(new Conv2d(256, 1024, 3, stride: 2, padding: 1).SubsamplesOnCpu);
    }

    [Fact]
    public void The_weight_keeps_torchvisions_name_and_shape()
    {
        using var conv = new Conv2d(8, 16, 3, stride: 2, padding: 1);
        var (name, parameter) = Assert.Single(conv.named_parameters());
        Assert.Equal("weight", name);
        Assert.Equal(new long[] { 16, 8, 3, 3 }, parameter.shape);
    }
}
