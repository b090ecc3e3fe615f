using System.Globalization;
using SimClr.Core.Training;
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
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context => result = work(new BarObserver(context)));
        return result;
    }

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

    private sealed class BarObserver(ProgressContext context) : ITrainingObserver
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
            _task.Description = Markup.Escape(Format(_what, r));
        }

        public void Message(string text) => AnsiConsole.MarkupLine(Markup.Escape(text));

        public void Finished() => _task?.StopTask();
    }

    private static string Format(string what, StepReport r)
    {
        var parts = new List<string> { $"{what} step {r.Step}/{r.TotalSteps}", $"epoch {r.Epoch + 1}" };
        if (double.IsFinite(r.Loss)) parts.Add($"loss {r.Loss:F4}");
        if (double.IsFinite(r.LearningRate)) parts.Add($"lr {r.LearningRate:G3}");
        if (r.ViewsPerSecond > 0) parts.Add($"{r.ViewsPerSecond:F0} views/s");
        if (r.Elapsed > TimeSpan.Zero) parts.Add($"ETA {r.Remaining.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture)}");
        return string.Join("  ", parts);
    }
}
