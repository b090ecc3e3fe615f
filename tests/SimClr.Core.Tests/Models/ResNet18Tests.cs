using SimClr.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Models;

public class ResNet18Tests
{
    /// <summary>torchvision.models.resnet18().state_dict().keys() without fc.weight and fc.bias (torchvision's order;
    /// TorchSharp lists parameters before buffers, and load_state_dict matches by name, so sets are compared).</summary>
    private static readonly string[] TorchvisionKeysWithoutFc =
    [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
        "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked", "layer1.0.conv2.weight",
        "layer1.0.bn2.weight", "layer1.0.bn2.bias", "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var",
        "layer1.0.bn2.num_batches_tracked", "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias",
        "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var", "layer1.1.bn1.num_batches_tracked",
        "layer1.1.conv2.weight", "layer1.1.bn2.weight", "layer1.1.bn2.bias", "layer1.1.bn2.running_mean",
        "layer1.1.bn2.running_var", "layer1.1.bn2.num_batches_tracked", "layer2.0.conv1.weight",
        "layer2.0.bn1.weight", "layer2.0.bn1.bias", "layer2.0.bn1.running_mean", "layer2.0.bn1.running_var",
        "layer2.0.bn1.num_batches_tracked", "layer2.0.conv2.weight", "layer2.0.bn2.weight", "layer2.0.bn2.bias",
        "layer2.0.bn2.running_mean", "layer2.0.bn2.running_var", "layer2.0.bn2.num_batches_tracked",
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
        "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.running_var",
        "layer2.0.downsample.1.num_batches_tracked", "layer2.1.conv1.weight", "layer2.1.bn1.weight",
        "layer2.1.bn1.bias", "layer2.1.bn1.running_mean", "layer2.1.bn1.running_var",
        "layer2.1.bn1.num_batches_tracked", "layer2.1.conv2.weight", "layer2.1.bn2.weight", "layer2.1.bn2.bias",
        "layer2.1.bn2.running_mean", "layer2.1.bn2.running_var", "layer2.1.bn2.num_batches_tracked",
        "layer3.0.conv1.weight", "layer3.0.bn1.weight", "layer3.0.bn1.bias", "layer3.0.bn1.running_mean",
        "layer3.0.bn1.running_var", "layer3.0.bn1.num_batches_tracked", "layer3.0.conv2.weight",
        "layer3.0.bn2.weight", "layer3.0.bn2.bias", "layer3.0.bn2.running_mean", "layer3.0.bn2.running_var",
        "layer3.0.bn2.num_batches_tracked", "layer3.0.downsample.0.weight", "layer3.0.downsample.1.weight",
        "layer3.0.downsample.1.bias", "layer3.0.downsample.1.running_mean", "layer3.0.downsample.1.running_var",
        "layer3.0.downsample.1.num_batches_tracked", "layer3.1.conv1.weight", "layer3.1.bn1.weight",
        "layer3.1.bn1.bias", "layer3.1.bn1.running_mean", "layer3.1.bn1.running_var",
        "layer3.1.bn1.num_batches_tracked", "layer3.1.conv2.weight", "layer3.1.bn2.weight", "layer3.1.bn2.bias",
        "layer3.1.bn2.running_mean", "layer3.1.bn2.running_var", "layer3.1.bn2.num_batches_tracked",
        "layer4.0.conv1.weight", "layer4.0.bn1.weight", "layer4.0.bn1.bias", "layer4.0.bn1.running_mean",
        "layer4.0.bn1.running_var", "layer4.0.bn1.num_batches_tracked", "layer4.0.conv2.weight",
        "layer4.0.bn2.weight", "layer4.0.bn2.bias", "layer4.0.bn2.running_mean", "layer4.0.bn2.running_var",
        "layer4.0.bn2.num_batches_tracked", "layer4.0.downsample.0.weight", "layer4.0.downsample.1.weight",
        "layer4.0.downsample.1.bias", "layer4.0.downsample.1.running_mean", "layer4.0.downsample.1.running_var",
        "layer4.0.downsample.1.num_batches_tracked", "layer4.1.conv1.weight", "layer4.1.bn1.weight",
        "layer4.1.bn1.bias", "layer4.1.bn1.running_mean", "layer4.1.bn1.running_var",
        "layer4.1.bn1.num_batches_tracked", "layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
        "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var", "layer4.1.bn2.num_batches_tracked",
    ];

    [Fact]
    public void State_dict_names_are_torchvisions_without_fc()
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.125));
        Assert.Equal(TorchvisionKeysWithoutFc.Order(), net.state_dict().Keys.Order());
    }

    [Fact]
    public void Classifier_adds_exactly_torchvisions_fc()
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.125), classes: 10);
        Assert.Equal(TorchvisionKeysWithoutFc.Concat(["fc.weight", "fc.bias"]).Order(), net.state_dict().Keys.Order());
    }

    [Fact]
    public void Full_width_backbone_has_torchvisions_parameter_count_with_the_cifar_stem()
    {
        // torchvision resnet18: 11,689,512; minus fc (513,000); 3x3 instead of 7x7 conv1 saves 7,680.
        using var net = new ResNet(new ResNetOptions());
        long count = net.parameters().Sum(p => p.numel());
        Assert.Equal(11_168_832, count);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Cifar_stem_is_a_3x3_stride_1_conv_without_bias(string device)
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.25));
        net.to(TestDevices.Get(device));
        var parameters = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(new long[] { 16, 3, 3, 3 }, parameters["conv1.weight"].shape);
        Assert.DoesNotContain("conv1.bias", parameters.Keys);
        using var input = randn(2, 3, 8, 8, device: TestDevices.Get(device));
        using var features = net.forward(input);
        Assert.Equal(new long[] { 2, 128 }, features.shape);
        Assert.Equal(TestDevices.Get(device).type, features.device_type);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Output_shapes_are_512_features_128_projections_and_class_logits(string device)
    {
        using var scope = NewDisposeScope();
        var on = TestDevices.Get(device);
        var input = randn(2, 3, 32, 32, device: on);
        using var backbone = new ResNet(new ResNetOptions());
        backbone.to(on).eval();
        Assert.Equal(new long[] { 2, 512 }, backbone.forward(input).shape);
        using var simclr = new SimClrNetwork(new ResNetOptions());
        simclr.to(on).eval();
        Assert.Equal(new long[] { 2, 128 }, simclr.forward(input).shape);
        using var classifier = new ResNet(new ResNetOptions(), classes: 10);
        classifier.to(on).eval();
        Assert.Equal(new long[] { 2, 10 }, classifier.forward(input).shape);
    }

    [Fact]
    public void Projection_head_is_512_to_2048_to_128()
    {
        using var simclr = new SimClrNetwork(new ResNetOptions());
        var shapes = simclr.named_parameters().Where(p => p.name.StartsWith("projector.", StringComparison.Ordinal))
            .ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(new long[] { 2048, 512 }, shapes["projector.0.weight"]);
        Assert.Equal(new long[] { 128, 2048 }, shapes["projector.2.weight"]);
        Assert.Equal(4, shapes.Count);
    }

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Grey_images_use_one_input_channel(string device)
    {
        using var net = new ResNet(new ResNetOptions(Width: 0.125, InputChannels: 1));
        net.to(TestDevices.Get(device));
        using var input = randn(3, 1, 28, 28, device: TestDevices.Get(device));
        using var features = net.forward(input);
        Assert.Equal(new long[] { 3, 64 }, features.shape);
    }

    [Fact]
    public void Initialisation_is_torchvisions()
    {
        manual_seed(1);
        using var net = new ResNet(new ResNetOptions(Width: 0.5));
        var parameters = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        // kaiming normal, fan_out, relu: std = sqrt(2 / (out_channels * k * k))
        var w = parameters["layer3.0.conv1.weight"]; // [128, 64, 3, 3]
        double expectedStd = Math.Sqrt(2.0 / (128 * 9));
        Assert.InRange(w.std().item<float>(), expectedStd * 0.95, expectedStd * 1.05);
        Assert.InRange(Math.Abs(w.mean().item<float>()), 0, expectedStd * 0.05);
        Assert.True(parameters["layer3.0.bn1.weight"].eq(1).all().item<bool>());
        Assert.True(parameters["layer3.0.bn1.bias"].eq(0).all().item<bool>());
    }

    [Fact]
    public void Impossible_options_are_rejected_with_their_names()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ResNet(new ResNetOptions(Width: 0)));
        Assert.Equal("Width", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResNet(new ResNetOptions(InputChannels: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResNet(new ResNetOptions(), classes: 0));
    }
}
