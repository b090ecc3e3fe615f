using ScottPlot;
using SimClr.Core.Experiments;

namespace SimClr.Cli.Plots;

/// <summary>An experiment's figures: test accuracy against label fraction (log x, error bars of one standard
/// deviation over seeds) and the pre-training's loss and kNN curves.</summary>
internal static class ExperimentPlots
{
    public static IReadOnlyList<string> Write(ExperimentReport report, string folder)
    {
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        var methods = report.Plan.Spec.Plot is { } names
            ? report.Plan.Spec.Methods.Where(m => names.Contains(m.Name)).ToList()
            : report.Plan.Spec.Methods.ToList();
        var plot = new Plot();
        bool any = false;
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < methods.Count; i++)
        {
            var cells = report.Fractions.Select(f => report.Cell(methods[i], f)).Where(c => c.Values.Count > 0).ToList();
            if (cells.Count == 0) continue;
            double[] xs = cells.Select(c => Math.Log10(c.Fraction * 100)).ToArray();
            double[] ys = cells.Select(c => c.Mean * 100).ToArray();
            double[] errors = cells.Select(c => double.IsFinite(c.StandardDeviation) ? c.StandardDeviation * 100 : 0).ToArray();
            var color = palette.GetColor(i);
            var line = plot.Add.Scatter(xs, ys, color);
            line.LegendText = methods[i].Row;
            line.MarkerSize = 7;
            var bars = plot.Add.ErrorBar(xs, ys, errors);
            bars.Color = color;
            any = true;
        }
        if (any)
        {
            var ticks = new ScottPlot.TickGenerators.NumericManual();
            foreach (double f in report.Fractions) ticks.AddMajor(Math.Log10(f * 100), FractionSpec.Label(f));
            plot.Axes.Bottom.TickGenerator = ticks;
            plot.Title($"{report.Plan.Spec.Name}: test accuracy against labelled fraction (mean ± sd over seeds)");
            plot.XLabel("labelled training images (log scale)");
            plot.YLabel("test accuracy (%)");
            plot.ShowLegend(Alignment.LowerRight);
            string path = Path.Combine(folder, "accuracy-vs-labels.png");
            plot.SavePng(path, 900, 560);
            written.Add(path);
        }
        var curve = report.PretrainCurve;
        Curve(curve.Where(p => double.IsFinite(p.Loss)).Select(p => (p.Epoch, p.Loss)), "pre-training: NT-Xent loss per epoch", "loss", Path.Combine(folder, "pretrain-loss.png"), written);
        Curve(curve.Where(p => double.IsFinite(p.Knn)).Select(p => (p.Epoch, p.Knn * 100)), "pre-training: kNN test accuracy (all training labels as the bank)", "kNN accuracy (%)",
            Path.Combine(folder, "pretrain-knn.png"), written);
        return written;
    }

    /// <summary>A line of (epoch, value) points, written to <paramref name="path"/> when there is any.</summary>
    private static void Curve(IEnumerable<(double Epoch, double Value)> points, string title, string label, string path, List<string> written)
    {
        var list = points.ToList();
        if (list.Count == 0) return;
        var plot = new Plot();
        plot.Add.Scatter(list.Select(p => p.Epoch).ToArray(), list.Select(p => p.Value).ToArray());
        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel(label);
        plot.SavePng(path, 800, 450);
        written.Add(path);
    }
}
