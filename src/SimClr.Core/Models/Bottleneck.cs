using SimClr.Core.Runtime;
using Sequential = TorchSharp.Modules.Sequential;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>torchvision's Bottleneck (ResNet v1.5: the stride on the 3x3 conv): 1x1 to the block's planes, 3x3,
/// 1x1 to planes x 4, identity or 1x1-conv shortcut. Field names are the state_dict names: conv1..3, bn1..3, downsample.</summary>
#pragma warning disable IDE1006 // torchvision's parameter names
public sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;

    public Bottleneck(int inChannels, int planes, int stride) : base(nameof(Bottleneck))
    {
        int outChannels = planes * Expansion;
        conv1 = new Conv2d(inChannels, planes, kernelSize: 1);
        bn1 = new BatchNorm2d(planes);
        conv2 = new Conv2d(planes, planes, kernelSize: 3, stride: stride, padding: 1);
        bn2 = new BatchNorm2d(planes);
        conv3 = new Conv2d(planes, outChannels, kernelSize: 1);
        bn3 = new BatchNorm2d(outChannels);
        if (stride != 1 || inChannels != outChannels)
        {
            downsample = nn.Sequential(
                new Conv2d(inChannels, outChannels, kernelSize: 1, stride: stride),
                new BatchNorm2d(outChannels));
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.relu(bn1.forward(conv1.forward(x)));
        y = nn.functional.relu(bn2.forward(conv2.forward(y)));
        y = bn3.forward(conv3.forward(y));
        var shortcut = downsample is null ? x : downsample.forward(x);
        return nn.functional.relu(y.PlusInPlace(shortcut)).MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
