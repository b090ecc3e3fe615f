namespace SimClr.Core.Models;

/// <summary>A network that can be run stage by stage (<see cref="ModelStage"/>).</summary>
public interface IStagedNetwork
{
    /// <summary>The stages in forward order; their parameters, in order, are the network's in state order.</summary>
    IReadOnlyList<ModelStage> Stages();
}
