using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>Backbone f(.) plus projection g(.): image -> z. The backbone's own state_dict is torchvision's
/// (export it alone); here its keys carry the prefix "backbone.", the head's "projector.".</summary>
#pragma warning disable IDE1006 // state_dict names
public sealed class SimClrNetwork : nn.Module<Tensor, Tensor>, IStagedNetwork
{
    private readonly ResNet backbone;
    private readonly nn.Module<Tensor, Tensor> projector;

    public SimClrNetwork(ResNetOptions backboneOptions, int projectionHidden = 2048, int projectionDim = 128) : base(nameof(SimClrNetwork))
    {
        backbone = new ResNet(backboneOptions);
        projector = ProjectionHead.Create(backboneOptions.FeatureDim, projectionHidden, projectionDim);
        RegisterComponents();
    }

    public ResNet Backbone => backbone;

    public nn.Module<Tensor, Tensor> Projector => projector;

    /// <summary>The backbone's stages, then the projection head as one (<see cref="IStagedNetwork"/>).</summary>
    public IReadOnlyList<ModelStage> Stages() => [.. backbone.Stages(), new("projector", projector.forward, [.. projector.parameters()])];

    /// <summary>Projections z, [batch, projectionDim].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return projector.forward(backbone.forward(x)).MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
