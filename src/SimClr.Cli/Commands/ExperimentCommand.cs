using System.CommandLine;
using System.Globalization;
using System.Text;
using SimClr.Cli.Plots;
using SimClr.Core.Experiments;

namespace SimClr.Cli.Commands;

/// <summary>
/// simclr experiment: a whole comparison as cells (configs/experiments/*.json), resumable: a finished cell is not run
/// again, an interrupted one continues. A line per cell; at the end, or with --report at any time, the table, the
/// plots and report.md.
/// </summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "the experiment file (configs/experiments/*.json)", Required = true };
        var report = new Option<bool>("--report") { Description = "only write and print the report of the cells finished so far; run nothing" };
        var output = new Option<string?>("--out") { Description = "folder for report.md and the plots (default: the experiment's folder, report/)" };
        var plain = CommonOptions.Plain("plain log lines instead of progress bars");
        var command = new Command("experiment", "Run a comparison as cells (pre-train, then each method at each label fraction and seed), resumably; prints the table and writes the plots.")
        {
            config, report, output, plain,
        };
        command.SetAction((r, cancel) => Task.FromResult(ExitCodes.Run("simclr experiment",
            () => Run(r.GetValue(config)!, r.GetValue(report), r.GetValue(output), r.GetValue(plain), cancel))));
        return command;
    }

    private static int Run(string path, bool reportOnly, string? output, bool plain, CancellationToken cancel)
    {
        var plan = ExperimentPlan.Load(path);
        string folder = output ?? Path.Combine(plan.Folder, "report");
        if (reportOnly)
        {
            Report(plan, folder, path);
            return ExitCodes.Success;
        }
        Console.WriteLine($"experiment {plan.Spec.Name}: {plan.Cells.Count} cells in {plan.Folder}");
        ExperimentOutcome outcome;
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel))
        using (Interrupts.Handle(stop.Cancel)) // between cells as well as inside one
        {
            var runner = new ExperimentRunner(plan, (c, run, checkpoint, token) => StageCommands.Execute(c, run, checkpoint, plain, token), Console.WriteLine);
            outcome = runner.Run(stop.Token);
        }
        Report(plan, folder, path);
        return outcome.Completed ? ExitCodes.Success : ExitCodes.Interrupted;
    }

    private static void Report(ExperimentPlan plan, string folder, string specPath)
    {
        var report = ExperimentReport.Read(plan, Console.WriteLine);
        Console.WriteLine();
        Console.WriteLine($"{plan.Spec.Name}: test accuracy (%, mean ± sd over seeds), {report.Finished} of {plan.Cells.Count} cells finished");
        Console.Write(report.MarkdownTable());
        var plots = ExperimentPlots.Write(report, folder);
        string markdown = Path.Combine(folder, "report.md");
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# {plan.Spec.Name}\n\n{plan.Spec.Description}\n\n");
        text.Append(CultureInfo.InvariantCulture, $"Test accuracy (%), mean ± sample standard deviation over seeds:\n\n{report.MarkdownTable()}\n");
        foreach (string plot in plots) text.Append(CultureInfo.InvariantCulture, $"![{Path.GetFileNameWithoutExtension(plot)}]({Path.GetFileName(plot)})\n\n");
        if (report.PretrainCurve.Count > 0)
        {
            text.Append("Pre-training, per epoch:\n\n| epoch | loss | kNN accuracy |\n| ---: | ---: | ---: |\n");
            foreach (var p in report.PretrainCurve)
                text.Append(CultureInfo.InvariantCulture, $"| {p.Epoch:0} | {(double.IsFinite(p.Loss) ? p.Loss.ToString("F4", CultureInfo.InvariantCulture) : "-")} | {(double.IsFinite(p.Knn) ? (p.Knn * 100).ToString("F2", CultureInfo.InvariantCulture) + "%" : "-")} |\n");
            text.Append('\n');
        }
        text.Append(CultureInfo.InvariantCulture, $"Cells:\n\n{report.MarkdownCells()}\nReproduce: `simclr experiment --config {specPath}` (finished cells are kept; `--report` rewrites this file).\n");
        SimClr.Core.Checkpoints.AtomicFile.Write(markdown, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
        Console.WriteLine($"report: {markdown}" + (plots.Count > 0 ? $"; plots: {string.Join(", ", plots.Select(Path.GetFileName))}" : ""));
    }
}
