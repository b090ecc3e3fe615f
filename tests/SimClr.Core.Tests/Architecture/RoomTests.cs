using SimClr.Core.Replica;

namespace SimClr.Core.Tests.Architecture;

/// <summary>
/// The training rooms import one way (docs/ARCHITECTURE.md): Experiments -> Stages -> Step -> Replica -> Collectives. The outer rooms
/// (Config, Data, Models, ...) use none of the four, except that Config may read a constant of Collectives; Collectives
/// uses nothing else of SimClr.Core, and no torch.
/// </summary>
public sealed class RoomTests
{
    private static readonly string[] Ladder = ["Collectives", "Replica", "Step", "Stages", "Experiments"];

    private static readonly Dictionary<(string From, string To), string> Edges =
        RoomDependencies.Of(typeof(ModelReplica).Assembly.Location, "SimClr.Core");

    /// <summary>The edges that break the rules, given the rooms from the bottom up.</summary>
    private static List<string> Violations(IReadOnlyList<string> ladder)
    {
        int Rank(string room) => ladder.ToList().IndexOf(room); // -1: an outer room or another library
        var wrong = new List<string>();
        foreach (var ((from, to), example) in Edges)
        {
            bool inCore = !to.Contains('.') && !to.StartsWith("System", StringComparison.Ordinal);
            int f = Rank(from), t = Rank(to);
            string? why =
                f == 0 && ((inCore && t != 0) || to.StartsWith("TorchSharp", StringComparison.Ordinal)) ? "Collectives uses no other room and no torch"
                : f >= 0 && t > f ? $"{from} is below {to}"
                : f < 0 && t > 0 ? $"the outer room {from} uses the training room {to}"
                : f < 0 && t == 0 && from != "Config" ? $"only Config may read Collectives, not {from}"
                : null;
            if (why is not null) wrong.Add($"{from} -> {to} ({why}): {example}");
        }
        return wrong;
    }

    [Fact]
    public void Rooms_import_one_way()
    {
        var wrong = Violations(Ladder);
        Assert.True(wrong.Count == 0, "imports against the rooms' direction:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void The_scan_sees_the_uses_that_are_there()
    {
        // the allowed edges exist (so an empty list of violations means something) ...
        Assert.Contains(("Experiments", "Stages"), Edges.Keys);
        Assert.Contains(("Stages", "Step"), Edges.Keys);
        Assert.Contains(("Step", "Replica"), Edges.Keys);
        Assert.Contains(("Replica", "Collectives"), Edges.Keys);
        Assert.Contains(("Replica", "TorchSharp"), Edges.Keys);
        // ... and the same code, judged with the rooms upside down, breaks the rules at every edge between two of them
        var upsideDown = Violations([.. Ladder.Reverse()]);
        Assert.Contains(upsideDown, v => v.StartsWith("Step -> Replica", StringComparison.Ordinal));
        Assert.Contains(upsideDown, v => v.StartsWith("Stages -> Step", StringComparison.Ordinal));
    }
}
