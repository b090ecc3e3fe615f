using System.Globalization;
using SimClr.Core.Stages;
using Spectre.Console;

namespace SimClr.Cli.Terminal;

/// <summary>
/// Progress for a person at a terminal (a live bar with step, epoch, loss, lr, views/s and ETA) or plain log lines
/// when the output is not a terminal (CI, files). All torch work stays on the calling thread.
/// </summary>
internal static class ConsoleObserver
{
    public static T Run<T>(bool plain, Func<ITrainingObserver, T> work)
    {
        if (plain || !AnsiConsole.Profile.Capabilities.Interactive || Console.IsOutputRedirected)
            return work(new PlainObserver());
        return RunBar(AnsiConsole.Console, work);
    }

    /// <summary>
    /// The live bar on <paramref name="console"/>: a description that fits the terminal's width, the bar, the percentage.
    /// One ETA only, the description's (at the pace of this process's steps); Spectre's RemainingTimeColumn, its own
    /// estimate from the bar's recent speed, disagreed with it.
    /// </summary>
    public static T RunBar<T>(IAnsiConsole console, Func<ITrainingObserver, T> work)
    {
        int bar = BarWidth(console.Profile.Width);
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = bar }, new PercentageColumn())
            .Start(context => result = work(new BarObserver(console, context, bar)));
        return result;
    }

    /// <summary>The bar's width on a terminal this wide: what the description leaves (its short form needs about 55 columns).</summary>
    private static int BarWidth(int terminal) => Math.Clamp(terminal - 65, 10, 40);

    /// <summary>Columns the bar, the percentage ("100%") and the gaps between the three columns take besides the bar.</summary>
    private const int BesidesDescription = 4 + 3;

    private sealed class PlainObserver : ITrainingObserver
    {
        private string _what = "";
        private long _total;
        private DateTime _lastLine = DateTime.MinValue;

        public void Started(string what, long firstStep, long totalSteps)
        {
            _what = what;
            _total = totalSteps;
            Console.WriteLine($"[{what}] steps {firstStep}..{totalSteps}");
        }

        public void Step(StepReport r)
        {
            if (r.Step != _total && DateTime.UtcNow - _lastLine < TimeSpan.FromSeconds(10)) return;
            _lastLine = DateTime.UtcNow;
            Console.WriteLine(Format(_what, r));
        }

        public void Message(string text) => Console.WriteLine(text);

        public void Finished() { }
    }

    private sealed class BarObserver(IAnsiConsole console, ProgressContext context, int bar) : ITrainingObserver
    {
        private ProgressTask? _task;
        private string _what = "";

        public void Started(string what, long firstStep, long totalSteps)
        {
            _what = what;
            _task = context.AddTask(Markup.Escape(what), maxValue: totalSteps);
            _task.Value = firstStep;
        }

        public void Step(StepReport r)
        {
            if (_task is null) return;
            _task.Value = r.Step;
            _task.Description = Markup.Escape(Fit(_what, r, console.Profile.Width - bar - BesidesDescription));
        }

        public void Message(string text) => console.MarkupLine(Markup.Escape(text));

        public void Finished() => _task?.StopTask();
    }

    /// <summary>The full progress line (plain output).</summary>
    public static string Format(string what, StepReport r) => Line(what, r, name: true, epoch: true, lr: true);

    /// <summary>
    /// The longest form of the progress line within <paramref name="width"/> columns: the full line, then without the
    /// stage name, the learning rate and the epoch, and last step, loss, views/s and ETA with single spaces (what
    /// matters on an 80-column terminal). Spectre cuts a description that does not fit down to "...".
    /// </summary>
    public static string Fit(string what, StepReport r, int width)
    {
        foreach (string line in new[]
        {
            Line(what, r, name: true, epoch: true, lr: true),
            Line(what, r, name: false, epoch: true, lr: true),
            Line(what, r, name: false, epoch: true, lr: false),
            Line(what, r, name: false, epoch: false, lr: false),
        })
        {
            if (line.Length <= width) return line;
        }
        return Line(what, r, name: false, epoch: false, lr: false, gap: " ");
    }

    private static string Line(string what, StepReport r, bool name, bool epoch, bool lr, string gap = "  ")
    {
        var parts = new List<string> { name ? $"{what} step {r.Step}/{r.TotalSteps}" : $"step {r.Step}/{r.TotalSteps}" };
        if (epoch) parts.Add($"epoch {r.Epoch + 1}");
        if (double.IsFinite(r.Loss)) parts.Add($"loss {r.Loss:F4}");
        if (lr && double.IsFinite(r.LearningRate)) parts.Add($"lr {r.LearningRate:G3}");
        if (r.ViewsPerSecond > 0) parts.Add($"{r.ViewsPerSecond:F0} views/s");
        if (r.Elapsed > TimeSpan.Zero) parts.Add($"ETA {Duration(r.Remaining)}");
        return string.Join(gap, parts);
    }

    /// <summary>h:mm:ss, hours past 24 included (TimeSpan's hh wraps at a day).</summary>
    private static string Duration(TimeSpan t) =>
        $"{(long)t.TotalHours}:{t.Minutes.ToString("D2", CultureInfo.InvariantCulture)}:{t.Seconds.ToString("D2", CultureInfo.InvariantCulture)}";
}
