using System.CommandLine;
using SimClr.Cli.Plots;
using SimClr.Cli.Terminal;
using SimClr.Core.Config;
using SimClr.Core.Stages;

namespace SimClr.Cli.Commands;

/// <summary>simclr pretrain | linear-eval | finetune | supervised: one stage from a config file plus overrides.</summary>
internal static class StageCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Make(Stage.Pretrain, "pretrain", "SimCLR pre-training (two views, projection head, NT-Xent, kNN monitor).");
        yield return Make(Stage.LinearEval, "linear-eval", "Linear classifier on the frozen backbone of --pretrained (the standard protocol).");
        yield return Make(Stage.KnnEval, "knn-eval", "Weighted kNN of the test images among the labelled training images, on the frozen backbone of --pretrained (knnK, knnTemperature, labelFraction).");
        yield return Make(Stage.Finetune, "finetune", "Train backbone + classifier with labels, starting from --pretrained.");
        yield return Make(Stage.Supervised, "supervised", "Train the same classifier from scratch (the baseline).");
    }

    private static Command Make(Stage stage, string name, string description)
    {
        var run = new RunOptions();
        var command = new Command(name, description) { run.Config, run.Set, run.Resume, run.Pretrained, run.Plain };
        command.SetAction((r, cancel) => Task.FromResult(Run(stage, run.Read(r), cancel)));
        return command;
    }

    /// <summary>Runs a stage; with <paramref name="replicas"/>, its training steps run on those workers (the coordinator).</summary>
    public static int Run(Stage stage, RunArguments arguments, CancellationToken cancel, RemoteReplicas? replicas = null)
    {
        RunDirectory? created = null; // a run directory made by this call, removed again when the input is refused
        RunDirectory? run = null;
        try
        {
            RunConfig config;
            string? checkpoint = null;
            if (arguments.Resume is not null)
            {
                run = RunDirectory.Open(arguments.Resume);
                config = RunConfigLoader.Load(run.ConfigFile, arguments.Overrides);
                if (config.Stage != stage) throw new ConfigException($"{run.Path} is a {config.Stage} run; resume it with that command");
                RemoveOrphanedTemporaries(run);
                checkpoint = run.IntactCheckpoint(Console.WriteLine);
            }
            else
            {
                config = ForStage(stage, arguments.ConfigPath, arguments.Pretrained, arguments.Overrides);
                StageRunner.CheckDevices(config, withWorkers: replicas is not null); // before a run directory is made for a run that cannot start
                if (arguments.ConfigPath is null) Console.WriteLine(DefaultsNotice(config));
                run = RunDirectory.Create(config);
                if (run.IsNew) created = run;
                else RemoveOrphanedTemporaries(run);
            }
            var result = Execute(config, run, checkpoint, arguments.Plain, cancel, replicas);
            Console.WriteLine(Summary(result));
            return result.Completed ? ExitCodes.Success : ExitCodes.Interrupted;
        }
        catch (Exception e) when (ExitCodes.For(e) is { } failure)
        {
            int code = ExitCodes.Report("simclr", failure);
            if (code == ExitCodes.Refused) created?.DeleteIfUnused(); // the input was refused: leave nothing behind
            if (code == ExitCodes.WorkerFailed)
            {
                Console.Error.WriteLine(run?.LatestCheckpoint() is { } last
                    ? $"simclr: the run stopped; its last checkpoint is intact: {last}. Fix or restart the workers, then resume with --resume {run.Path}."
                    : "simclr: the run stopped before its first checkpoint, so there is nothing to resume. Fix or restart the workers, then start the run again.");
            }
            return code;
        }
    }

    private static void RemoveOrphanedTemporaries(RunDirectory run)
    {
        var removed = run.RemoveOrphanedTemporaries();
        if (removed.Count > 0)
            Console.WriteLine($"simclr: removed {removed.Count} temporary file(s) that an interrupted write left behind: {string.Join(", ", removed)}");
    }

    /// <summary>What a run without --config is about to do: the built-in defaults are the seed's full recipe (hours).</summary>
    public static string DefaultsNotice(RunConfig config) =>
        $"simclr: no --config given: using the built-in defaults (the seed's full recipe) with your --set values: stage {config.Stage.Name()}, "
        + $"data {config.Data.Name}, model.width {config.Model.Width.ToString(System.Globalization.CultureInfo.InvariantCulture)}, batchSize {config.BatchSize}, "
        + $"epochs {config.Epochs}, device {config.Device}. At full width that is hours on a CPU; for minutes use --config configs/quickstart-{config.Stage.Name()}.json (see configs/).";

    /// <summary>A config for this command's stage: a file written for another stage is refused; one without a stage takes this one.</summary>
    public static RunConfig ForStage(Stage stage, string? configPath, string? pretrained, IEnumerable<string> overrides)
    {
        string name = stage.Name();
        if (configPath is not null && File.Exists(configPath))
        {
            string? written = null;
            try
            {
                written = System.Text.Json.Nodes.JsonNode.Parse(RunConfigLoader.ReadText(configPath),
                    documentOptions: new() { CommentHandling = System.Text.Json.JsonCommentHandling.Skip, AllowTrailingCommas = true })?["stage"]?.GetValue<string>();
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or ArgumentException)
            {
                // the loader below reports what is wrong with the file
            }
            if (written is not null && written != name) throw new ConfigException($"{configPath} is a {written} config; run it with 'simclr {written}'");
        }
        var all = new List<string> { $"stage={name}" };
        if (pretrained is not null) all.Add($"pretrained={System.Text.Json.JsonSerializer.Serialize(pretrained)}");
        all.AddRange(overrides);
        return RunConfigLoader.Load(configPath, all);
    }

    /// <summary>Runs a stage with progress, Ctrl-C handling (a checkpoint, then a clean stop) and plots.</summary>
    public static StageResult Execute(RunConfig config, RunDirectory run, string? checkpoint, bool plain, CancellationToken cancel, RemoteReplicas? replicas = null)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var signals = Interrupts.Handle(interrupt.Cancel); // the loop writes a checkpoint and stops cleanly
        var result = ConsoleObserver.Run(plain, observer => Run(config, run, observer, checkpoint, replicas, interrupt.Token));
        try
        {
            RunPlots.Write(run.Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the run and its checkpoint are complete; the plots only draw metrics.jsonl again
            Console.Error.WriteLine($"simclr: warning: could not write the plots in {run.Path}: {e.Message}");
        }
        return result;
    }

    /// <summary>StageRunner's three steps: prepare (the data), join the workers (with <paramref name="replicas"/>) to its training images, run.</summary>
    private static StageResult Run(RunConfig config, RunDirectory run, ITrainingObserver observer, string? checkpoint, RemoteReplicas? replicas, CancellationToken cancel)
    {
        using var stage = StageRunner.PrepareAsync(config, run, observer, cancel, withWorkers: replicas is not null).GetAwaiter().GetResult();
        return StageRunner.Run(stage, run, observer, replicas?.Join(stage.Config, stage.Train), checkpoint, cancel: cancel);
    }

    public static string Summary(StageResult result)
    {
        string metrics = string.Join(", ", result.Metrics.Where(kv => kv.Key != "epoch").Select(kv => $"{kv.Key} {kv.Value:F4}"));
        return $"{(result.Completed ? "done" : "stopped")}: {metrics}\nrun directory: {result.RunPath}" + (result.CheckpointPath is null ? "" : $"\ncheckpoint: {result.CheckpointPath}");
    }
}
