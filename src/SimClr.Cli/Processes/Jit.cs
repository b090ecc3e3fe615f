namespace SimClr.Cli.Processes;

/// <summary>How the processes `simclr launch` starts (workers, coordinator) have their .NET code compiled.</summary>
public static class Jit
{
    /// <summary>
    /// The launched processes compile every method fully optimised at its first call instead of .NET's tiered
    /// compilation, unless the user's environment chooses (any DOTNET_Tiered* or COMPlus_Tiered* variable): with tiering
    /// each process recompiles its hot methods in the background for the first minute or so. Three processes doing so
    /// on the workers' cores cost the workers 6-12% of a core each, and the run ~8% of its throughput over that time
    /// (BENCHMARKS.md, row 4). Their hot path is native (libtorch), so tiering's profile-guided code buys them nothing
    /// measurable later. The start costs ~0.5 s more per process.
    /// </summary>
    public static KeyValuePair<string, string>? ForLaunchedProcesses(IReadOnlyDictionary<string, string> environment) =>
        environment.Keys.Any(k => k.StartsWith("DOTNET_Tiered", StringComparison.OrdinalIgnoreCase) || k.StartsWith("COMPlus_Tiered", StringComparison.OrdinalIgnoreCase))
            ? null
            : new KeyValuePair<string, string>("DOTNET_TieredCompilation", "0");
}
