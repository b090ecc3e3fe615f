using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SimClr.Core.Experiments;

/// <summary>One method at one label fraction: the test accuracies of its finished seeds.</summary>
public sealed record ReportCell(MethodSpec Method, double Fraction, IReadOnlyList<double> Values, int Expected)
{
    public double Mean => Values.Count == 0 ? double.NaN : Values.Average();

    /// <summary>Sample standard deviation (n - 1); NaN with fewer than two seeds.</summary>
    public double StandardDeviation => Values.Count < 2 ? double.NaN : Math.Sqrt(Values.Sum(v => (v - Mean) * (v - Mean)) / (Values.Count - 1));

    public bool Complete => Values.Count == Expected;

    /// <summary>"88.12 ± 0.40", with "(2 of 3)" while seeds are missing, "-" for none.</summary>
    public string Text()
    {
        if (Values.Count == 0) return "-";
        string text = (Mean * 100).ToString("F2", CultureInfo.InvariantCulture) + (Values.Count > 1 ? " ± " + (StandardDeviation * 100).ToString("F2", CultureInfo.InvariantCulture) : "");
        return Complete ? text : $"{text} ({Values.Count} of {Expected})";
    }
}

/// <summary>The pre-training's curve, one point per epoch record: loss, and kNN accuracy where it was measured.</summary>
public sealed record CurvePoint(double Epoch, double Loss, double Knn);

/// <summary>
/// What an experiment's finished cells say, at any time: test accuracy per method and label fraction (mean ± sample
/// standard deviation over seeds, in percent), the pre-training's curves, and every cell's wall time.
/// </summary>
public sealed class ExperimentReport
{
    private ExperimentReport(ExperimentPlan plan, IReadOnlyList<ReportCell> cells, IReadOnlyDictionary<string, CellRecord> records, IReadOnlyList<CurvePoint> curve)
    {
        Plan = plan;
        Cells = cells;
        Records = records;
        PretrainCurve = curve;
    }

    public ExperimentPlan Plan { get; }

    public IReadOnlyList<ReportCell> Cells { get; }

    /// <summary>The finished cells' records by cell id.</summary>
    public IReadOnlyDictionary<string, CellRecord> Records { get; }

    public IReadOnlyList<CurvePoint> PretrainCurve { get; }

    public IReadOnlyList<double> Fractions => Plan.Spec.LabelFractions.Select(f => f.Fraction).Order().ToList();

    public int Finished => Records.Count;

    public ReportCell Cell(MethodSpec method, double fraction) => Cells.First(c => c.Method == method && c.Fraction == fraction);

    public static ExperimentReport Read(ExperimentPlan plan, Action<string>? warn = null)
    {
        var records = new Dictionary<string, CellRecord>();
        foreach (var cell in plan.Cells)
            if (CellRecord.TryRead(cell.Folder, warn) is { } record) records[cell.Id] = record;
        var cells = new List<ReportCell>();
        foreach (var method in plan.Spec.Methods)
            foreach (var fraction in plan.Spec.LabelFractions.OrderBy(f => f.Fraction))
            {
                var values = plan.Cells.Where(c => c.Method == method && c.Fraction == fraction.Fraction && records.ContainsKey(c.Id))
                    .Select(c => records[c.Id].Metrics.GetValueOrDefault("test_accuracy", double.NaN))
                    .Where(double.IsFinite).ToList();
                cells.Add(new ReportCell(method, fraction.Fraction, values, fraction.Seeds.Length));
            }
        var curve = plan.PretrainCell is { } pretrain ? ReadCurve(Path.Combine(pretrain.Folder, "metrics.jsonl")) : [];
        return new ExperimentReport(plan, cells, records, curve);
    }

    /// <summary>Per epoch: the mean loss of the step records logged in it, and the kNN accuracy where measured. A
    /// resumed run may have logged a step or an epoch twice: the later record counts.</summary>
    private static List<CurvePoint> ReadCurve(string metrics)
    {
        var losses = new SortedDictionary<long, double>();
        var epochs = new SortedDictionary<double, (long Step, double Knn)>();
        if (!File.Exists(metrics)) return [];
        foreach (string line in File.ReadLines(metrics))
        {
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                double Value(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
                string? kind = root.TryGetProperty("kind", out var k) ? k.GetString() : null;
                long step = (long)Value("step");
                if (kind == "step" && double.IsFinite(Value("loss"))) losses[step] = Value("loss");
                else if (kind == "epoch" && double.IsFinite(Value("epoch"))) epochs[Value("epoch")] = (step, Value("knn_accuracy"));
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // a line cut short by a kill: the rest is still the curve
            }
        }
        var points = new List<CurvePoint>();
        long previous = long.MinValue;
        foreach (var (epoch, (step, knn)) in epochs)
        {
            var inEpoch = losses.Where(l => l.Key > previous && l.Key <= step).Select(l => l.Value).ToList();
            points.Add(new CurvePoint(epoch, inEpoch.Count == 0 ? double.NaN : inEpoch.Average(), knn));
            previous = step;
        }
        return points;
    }

    /// <summary>The table in Markdown: a row per method, a column per label fraction, test accuracy in percent.</summary>
    public string MarkdownTable()
    {
        var text = new StringBuilder();
        text.Append("| method |");
        foreach (double f in Fractions) text.Append(CultureInfo.InvariantCulture, $" {FractionSpec.Label(f)} labels |");
        text.AppendLine().Append("| --- |").Append(string.Concat(Fractions.Select(_ => " ---: |"))).AppendLine();
        foreach (var method in Plan.Spec.Methods)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {method.Row} |");
            foreach (double f in Fractions) text.Append(CultureInfo.InvariantCulture, $" {Cell(method, f).Text()} |");
            text.AppendLine();
        }
        return text.ToString();
    }

    /// <summary>Every cell: its metric and wall time, or that it has not finished.</summary>
    public string MarkdownCells()
    {
        var text = new StringBuilder("| cell | what | test accuracy | wall time | attempts |\n| --- | --- | ---: | ---: | ---: |\n");
        foreach (var cell in Plan.Cells)
        {
            if (Records.TryGetValue(cell.Id, out var r))
            {
                string metric = r.Metrics.TryGetValue("test_accuracy", out double t) ? $"{t * 100:F2}%"
                    : r.Metrics.TryGetValue("knn_accuracy", out double k) ? $"kNN {k * 100:F2}%" : "-";
                text.Append(CultureInfo.InvariantCulture, $"| {cell.Id} | {cell.Describe()} | {metric} | {Duration(r.Seconds)} | {r.Attempts} |\n");
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"| {cell.Id} | {cell.Describe()} | not finished | - | - |\n");
            }
        }
        double total = Records.Values.Sum(r => r.Seconds);
        text.Append(CultureInfo.InvariantCulture, $"\n{Finished} of {Plan.Cells.Count} cells finished, {Duration(total)} of wall time in all.\n");
        return text.ToString();
    }

    /// <summary>For each fraction, the first plotted method's mean minus the second's, where both have all their seeds.</summary>
    public IReadOnlyList<(double Fraction, double Points)> Margins(MethodSpec first, MethodSpec second) =>
        Fractions.Select(f => (f, (Cell(first, f).Mean - Cell(second, f).Mean) * 100)).Where(m => double.IsFinite(m.Item2)).ToList();

    public static string Duration(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h {t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m {t.Seconds:D2}s" : $"{t.Seconds}s";
    }
}
