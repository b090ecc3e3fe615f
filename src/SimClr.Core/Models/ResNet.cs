using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// torchvision's ResNet (resnet18, resnet34 or resnet50; <see cref="ResNetOptions"/>) with the CIFAR stem SimCLR uses on
/// CIFAR-10 (paper, appendix B.9: conv1 3x3 stride 1 without bias, no max-pool) or torchvision's ImageNet stem (7x7
/// stride 2, 3x3 stride-2 max-pool). Without <c>classes</c> it has no fc and returns the pooled features (512-d at full
/// width, 2048 for resnet50); with it, fc included. Parameter and buffer names equal torchvision's state_dict, so
/// weights move to and from PyTorch.
/// </summary>
#pragma warning disable IDE1006 // torchvision's parameter names
public sealed class ResNet : nn.Module<Tensor, Tensor>, IStagedNetwork
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly MixedLinear? fc;

    public ResNetOptions Options { get; }

    public int? Classes { get; }

    public ResNet(ResNetOptions options, int? classes = null) : base(nameof(ResNet))
    {
        options.Validate();
        if (classes is < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "classes must be >= 1");
        Options = options;
        Classes = classes;
        int c0 = options.Channels(0);
        _maxPool = options.Stem == ResNetStem.Imagenet;
        conv1 = _maxPool
            ? new Conv2d(options.InputChannels, c0, kernelSize: 7, stride: 2, padding: 3)
            : new Conv2d(options.InputChannels, c0, kernelSize: 3, stride: 1, padding: 1);
        bn1 = new BatchNorm2d(c0);
        layer1 = Stage(options, c0, 0, stride: 1);
        layer2 = Stage(options, options.StageOutput(0), 1, stride: 2);
        layer3 = Stage(options, options.StageOutput(1), 2, stride: 2);
        layer4 = Stage(options, options.StageOutput(2), 3, stride: 2);
        if (classes is int k) fc = new MixedLinear(options.FeatureDim, k);
        RegisterComponents();
        InitializeLikeTorchvision();
    }

    private readonly bool _maxPool;

    /// <summary>torchvision's _make_layer: the first block changes stride and channels, the others keep them.</summary>
    private static Sequential Stage(ResNetOptions options, int inChannels, int stage, int stride)
    {
        int planes = options.Channels(stage);
        var blocks = new List<nn.Module<Tensor, Tensor>>();
        for (int i = 0; i < options.Blocks[stage]; i++)
        {
            int input = i == 0 ? inChannels : options.StageOutput(stage);
            int s = i == 0 ? stride : 1;
            blocks.Add(options.UsesBottlenecks ? new Bottleneck(input, planes, s) : new BasicBlock(input, planes, s));
        }
        return nn.Sequential(blocks.ToArray());
    }

    /// <summary>conv1, bn1, relu, and the max-pool of the ImageNet stem.</summary>
    private Tensor Stem(Tensor x)
    {
        var y = nn.functional.relu(bn1.forward(conv1.forward(x)));
        return _maxPool ? nn.functional.max_pool2d(y, kernel_size: 3, stride: 2, padding: 1) : y;
    }

    /// <summary>torchvision's ResNet init: kaiming-normal (fan_out, relu) convs; BN weight 1, bias 0; Linear keeps PyTorch's default.</summary>
    private void InitializeLikeTorchvision()
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    nn.init.kaiming_normal_(conv.Weight, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
                    break;
                case TorchSharp.Modules.BatchNorm bn:
                    nn.init.ones_(bn.weight);
                    nn.init.zeros_(bn.bias);
                    break;
            }
        }
    }

    /// <summary>Pooled backbone features, [batch, FeatureDim].</summary>
    public Tensor Features(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = Stem(x);
        y = layer4.forward(layer3.forward(layer2.forward(layer1.forward(y))));
        return nn.functional.adaptive_avg_pool2d(y, 1).flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>The stem, each block, the pooling, and fc when there is one (<see cref="IStagedNetwork"/>).</summary>
    public IReadOnlyList<ModelStage> Stages()
    {
        var stages = new List<ModelStage>
        {
            new("stem", Stem, [.. conv1.parameters(), .. bn1.parameters()]),
        };
        foreach (var (name, layer) in new[] { ("layer1", layer1), ("layer2", layer2), ("layer3", layer3), ("layer4", layer4) })
        {
            foreach (var (index, block) in layer.named_children())
                stages.Add(new($"{name}.{index}", ((nn.Module<Tensor, Tensor>)block).forward, [.. block.parameters()]));
        }
        stages.Add(new("pool", x => nn.functional.adaptive_avg_pool2d(x, 1).flatten(1), []));
        if (fc is not null) stages.Add(new("fc", fc.forward, [.. fc.parameters()]));
        return stages;
    }

    /// <summary>Features without fc, logits with it.</summary>
    public override Tensor forward(Tensor x)
    {
        if (fc is null) return Features(x);
        using var scope = NewDisposeScope();
        return fc.forward(Features(x)).MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
