using System.Text.Json;
using ScottPlot;

namespace SimClr.Cli.Plots;

/// <summary>PNG plots of a run's metrics.jsonl, like the seed's figures: loss per step and accuracy per epoch.</summary>
internal static class RunPlots
{
    public static IReadOnlyList<string> Write(string runPath)
    {
        string metrics = Path.Combine(runPath, "metrics.jsonl");
        if (!File.Exists(metrics)) return [];
        var records = File.ReadLines(metrics).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var written = new List<string>();
        var steps = records.Where(r => r.GetProperty("kind").GetString() == "step" && r.TryGetProperty("loss", out var l) && l.ValueKind == JsonValueKind.Number).ToList();
        if (steps.Count > 1)
        {
            var plot = new Plot();
            plot.Add.Scatter(steps.Select(r => (double)r.GetProperty("step").GetInt64()).ToArray(), steps.Select(r => r.GetProperty("loss").GetDouble()).ToArray());
            plot.Title("training loss");
            plot.XLabel("step");
            plot.YLabel("loss");
            string path = Path.Combine(runPath, "loss.png");
            plot.SavePng(path, 800, 500);
            written.Add(path);
        }
        var epochs = records.Where(r => r.GetProperty("kind").GetString() == "epoch").ToList();
        string[] series = ["train_accuracy", "test_accuracy", "knn_accuracy"];
        var accuracyPlot = new Plot();
        bool any = false;
        foreach (string name in series)
        {
            var points = epochs.Where(r => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number).ToList();
            if (points.Count == 0) continue;
            var line = accuracyPlot.Add.Scatter(points.Select(r => r.GetProperty("epoch").GetDouble()).ToArray(), points.Select(r => r.GetProperty(name).GetDouble()).ToArray());
            line.LegendText = name.Replace('_', ' ');
            any = true;
        }
        if (any)
        {
            accuracyPlot.Title("accuracy");
            accuracyPlot.XLabel("epoch");
            accuracyPlot.YLabel("top-1 accuracy");
            accuracyPlot.ShowLegend();
            string path = Path.Combine(runPath, "accuracy.png");
            accuracyPlot.SavePng(path, 800, 500);
            written.Add(path);
        }
        return written;
    }
}
