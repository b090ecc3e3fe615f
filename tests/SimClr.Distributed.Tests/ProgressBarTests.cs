using System.Text.RegularExpressions;
using SimClr.Cli.Terminal;
using SimClr.Core.Stages;
using Spectre.Console;

namespace SimClr.Distributed.Tests;

/// <summary>The progress bar `simclr` draws for a person at a terminal, rendered by Spectre as at one.</summary>
public sealed partial class ProgressBarTests
{
    /// <summary>
    /// The live bar on an 80-column terminal, rendered by Spectre as at a terminal: the line keeps step, loss, views/s
    /// and ETA within 80 columns (the full line did not fit and Spectre cut it down to "..."), and shows one ETA (Spectre's
    /// remaining-time column showed a second one that disagreed).
    /// </summary>
    [Fact]
    public void The_progress_bar_fits_80_columns_with_step_loss_views_per_second_and_one_eta()
    {
        var screen = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.Standard,
            Interactive = InteractionSupport.Yes,
            Out = new AnsiConsoleOutput(screen),
        });
        console.Profile.Width = 80;
        ConsoleObserver.RunBar(console, observer =>
        {
            observer.Started("pretrain", 0, 4000);
            observer.Step(new StepReport(57, 4000, 7, 3.5804, 0.0625, 150, TimeSpan.FromSeconds(24.2)));
            Thread.Sleep(300); // a refresh or two of the live display
            observer.Finished();
            return 0;
        });
        var lines = Ansi().Replace(screen.ToString(), "").Split('\n', '\r').Where(l => l.Contains("step 57/4000", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        string line = lines[^1].TrimEnd();
        Assert.True(line.Length <= 80, $"{line.Length} columns: '{line}'");
        Assert.Contains("loss 3.5804", line, StringComparison.Ordinal);
        Assert.Contains("150 views/s", line, StringComparison.Ordinal);
        Assert.Contains("ETA 0:27:54", line, StringComparison.Ordinal); // 24.2 s for 57 steps, 3943 to go
        Assert.Single(Clock().Matches(line));
        Assert.DoesNotContain("…", line, StringComparison.Ordinal);
        Assert.DoesNotContain("--:--", line, StringComparison.Ordinal);
    }

    [Fact]
    public void The_eta_of_a_resumed_run_counts_only_the_steps_this_process_took()
    {
        // resumed at step 3900: 57 steps in 24.2 s, 43 to go: 18 s (not 24.2 s / 3957 x 43)
        var report = new StepReport(3957, 4000, 500, 1, 0.1, 150, TimeSpan.FromSeconds(24.2), FirstStep: 3900);
        Assert.Equal(18.26, report.Remaining.TotalSeconds, 2);
        Assert.Contains("ETA 0:00:18", ConsoleObserver.Fit("pretrain", report, 80), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)")]
    private static partial Regex Ansi();

    [GeneratedRegex(@"\d+:\d\d:\d\d")]
    private static partial Regex Clock();
}
