using System.CommandLine;
using SimClr.Cli.Commands;
using SimClr.Cli.Commands.Bench;
using SimClr.Cli.Processes;

// First, before any tensor exists: a training command runs again in this process with tcmalloc preloaded where it is
// installed; otherwise glibc's malloc is tuned so a training step's large blocks are reused, not mapped and faulted in
// again every step (SIMCLR_MALLOC=system leaves malloc alone; see Allocator).
Allocator.ReexecWithTcmalloc(args);
Allocator.TuneThisProcess();

// Then TorchSharp's native libraries, for the commands that use them: one message naming a missing or broken library
// instead of TorchSharp's page about NuGet packages (or "ArgumentNullException (paths)") and a stack trace.
if (NativeTorch.LoadFor(args) is { } problem)
{
    return ExitCodes.Report("simclr", (ExitCodes.Refused, problem));
}

var root = new RootCommand("simclr: SimCLR contrastive pre-training of a CIFAR-stem ResNet-18, then fine-tuning, in C# with TorchSharp.");
root.Subcommands.Add(QuickstartCommand.Create());
root.Subcommands.Add(ExperimentCommand.Create());
foreach (var stage in StageCommands.Create()) root.Subcommands.Add(stage);
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(WorkerCommand.Create());
root.Subcommands.Add(CoordinatorCommand.Create());
root.Subcommands.Add(LaunchCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ShowAugmentCommand.Create());
// Each command handles SIGINT/SIGTERM itself (a checkpoint first, children stopped in order): System.CommandLine must not
// end the process two seconds after a signal.
try
{
    return root.Parse(args).Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return ExitCodes.Unhandled(e);
}
