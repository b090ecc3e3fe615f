using System.CommandLine;
using SimClr.Cli.Commands;

var root = new RootCommand("simclr: SimCLR contrastive pre-training of a CIFAR-stem ResNet-18, then fine-tuning, in C# with TorchSharp.");
root.Subcommands.Add(QuickstartCommand.Create());
foreach (var stage in StageCommands.Create()) root.Subcommands.Add(stage);
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(WorkerCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ShowAugmentCommand.Create());
return root.Parse(args).Invoke();
