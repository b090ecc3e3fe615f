using SimClr.Core.Runtime;
using Sequential = TorchSharp.Modules.Sequential;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>torchvision's BasicBlock (two 3x3 convs, identity or 1x1-conv shortcut). Field names are the
/// state_dict names, so they must stay torchvision's: conv1, bn1, conv2, bn2, downsample.</summary>
#pragma warning disable IDE1006 // torchvision's parameter names
public sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;

    public BasicBlock(int inChannels, int outChannels, int stride) : base(nameof(BasicBlock))
    {
        conv1 = new Conv2d(inChannels, outChannels, kernelSize: 3, stride: stride, padding: 1);
        bn1 = new BatchNorm2d(outChannels);
        conv2 = new Conv2d(outChannels, outChannels, kernelSize: 3, stride: 1, padding: 1);
        bn2 = new BatchNorm2d(outChannels);
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
        y = bn2.forward(conv2.forward(y));
        var shortcut = downsample is null ? x : downsample.forward(x);
        return nn.functional.relu(y.PlusInPlace(shortcut)).MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
