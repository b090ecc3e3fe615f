using System.CommandLine;

namespace SimClr.Cli.Commands.Bench;

/// <summary>Benchmarks that print figures (BENCHMARKS.md records them with these commands); never part of the tests.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure performance; prints figures for BENCHMARKS.md.");
        command.Subcommands.Add(AugmentBench.Create());
        command.Subcommands.Add(MemoryBench.Create());
        command.Subcommands.Add(StepBench.Create());
        command.Subcommands.Add(BreakdownBench.Create());
        command.Subcommands.Add(ReduceBench.Create());
        command.Subcommands.Add(ConvBench.Create());
        command.Subcommands.Add(LossBench.Create());
        command.Subcommands.Add(ImageFolderBench.Create());
        command.Subcommands.Add(NcclBench.Create());
        return command;
    }
}
