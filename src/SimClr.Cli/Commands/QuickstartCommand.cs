using System.CommandLine;
using System.Diagnostics;
using SimClr.Core.Config;
using SimClr.Core.Stages;
using Spectre.Console;

namespace SimClr.Cli.Commands;

/// <summary>
/// The seed's experiment end to end on the embedded data set: pre-train, linear-eval of the pre-trained and of a
/// random backbone, fine-tune, supervised from scratch; one comparison table at the end.
/// </summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var configs = new Option<string>("--configs") { Description = "folder holding quickstart-*.json", DefaultValueFactory = _ => "configs" };
        var set = CommonOptions.Set("override a value in every stage: key.path=value (repeatable)");
        var plain = CommonOptions.Plain("plain log lines instead of progress bars");
        var command = new Command("quickstart", "Pre-train -> linear-eval (vs a random backbone) -> fine-tune -> supervised on the embedded synthetic-shapes data; prints a comparison table.")
        {
            configs, set, plain,
        };
        command.SetAction((r, cancel) => Task.FromResult(ExitCodes.Run("simclr quickstart", () => Run(r.GetValue(configs)!, r.GetValue(set) ?? [], r.GetValue(plain), cancel))));
        return command;
    }

    private static int Run(string folder, string[] overrides, bool plain, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        string runs = Path.Combine("runs", $"quickstart-{DateTime.Now:yyyyMMdd-HHmmss}");
        string Config(string stage) => Path.Combine(folder, $"quickstart-{stage}.json");
        if (!File.Exists(Config("pretrain")))
            throw new ConfigException($"{Config("pretrain")} not found: run from the repository root or pass --configs");
        IEnumerable<string> Common(string name) => overrides.Append($"runsFolder={System.Text.Json.JsonSerializer.Serialize(runs)}").Append($"runName={name}");

        var pretrain = Stage(Core.Config.Stage.Pretrain, Config("pretrain"), null, Common("pretrain"), plain, cancel);
        if (!pretrain.Completed) return ExitCodes.Interrupted;
        var linearTrained = Stage(Core.Config.Stage.LinearEval, Config("linear-eval"), pretrain.CheckpointPath, Common("linear-eval-simclr"), plain, cancel);
        var linearRandom = Stage(Core.Config.Stage.LinearEval, Config("linear-eval"), RunConfig.RandomBackbone, Common("linear-eval-random"), plain, cancel);
        var finetune = Stage(Core.Config.Stage.Finetune, Config("finetune"), pretrain.CheckpointPath, Common("finetune"), plain, cancel);
        if (!finetune.Completed) return ExitCodes.Interrupted;
        var supervised = Stage(Core.Config.Stage.Supervised, Config("supervised"), null, Common("supervised"), plain, cancel);
        if (!supervised.Completed) return ExitCodes.Interrupted;

        var table = new Table().Title("SimCLR quickstart: synthetic-shapes test accuracy (top-1)")
            .AddColumn("model").AddColumn(new TableColumn("test accuracy").RightAligned()).AddColumn("how");
        table.AddRow("random backbone + linear", Percent(linearRandom.Metrics["test_accuracy"]), "frozen untrained ResNet-18, linear classifier");
        table.AddRow("SimCLR backbone + linear", Percent(linearTrained.Metrics["test_accuracy"]), "frozen pre-trained ResNet-18, linear classifier");
        table.AddRow("SimCLR + fine-tune", Percent(finetune.Metrics["test_accuracy"]), "pre-trained backbone, all layers trained with labels");
        table.AddRow("supervised from scratch", Percent(supervised.Metrics["test_accuracy"]), "same classifier and schedule, random init");
        AnsiConsole.Write(table);
        double margin = linearTrained.Metrics["test_accuracy"] - linearRandom.Metrics["test_accuracy"];
        Console.WriteLine($"pre-training vs random backbone, linear eval: {margin * 100:+0.0;-0.0} points; kNN after pre-training: {Percent(pretrain.Metrics.GetValueOrDefault("knn_accuracy", double.NaN))}");
        Console.WriteLine($"runs, metrics, plots and checkpoints: {Path.GetFullPath(runs)}  ({clock.Elapsed:mm\\:ss})");
        return ExitCodes.Success;
    }

    private static StageResult Stage(Stage stage, string config, string? pretrained, IEnumerable<string> overrides, bool plain, CancellationToken cancel)
    {
        var resolved = StageCommands.ForStage(stage, config, pretrained, overrides);
        return StageCommands.Execute(resolved, RunDirectory.Create(resolved), null, plain, cancel);
    }

    private static string Percent(double value) => double.IsFinite(value) ? $"{value * 100:F1}%" : "-";
}
