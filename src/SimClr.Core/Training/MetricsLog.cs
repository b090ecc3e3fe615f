using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>Appends metrics to metrics.jsonl (flushed per line, so a crash loses nothing written) and TensorBoard events.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _jsonl;
    private readonly SummaryWriter? _tensorboard;

    public MetricsLog(RunDirectory run, bool tensorboard = true)
    {
        _jsonl = new StreamWriter(new FileStream(run.MetricsFile, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false)) { AutoFlush = true };
        if (tensorboard) _tensorboard = utils.tensorboard.SummaryWriter(run.EventsFolder);
    }

    /// <summary>One record: kind ("step", "epoch", "eval", ...), the global step, and named values.</summary>
    public void Write(string kind, long step, IReadOnlyDictionary<string, double> values, IReadOnlyDictionary<string, string>? labels = null)
    {
        var record = new Dictionary<string, object> { ["kind"] = kind, ["step"] = step, ["time"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture) };
        foreach (var (k, v) in labels ?? new Dictionary<string, string>()) record[k] = v;
        foreach (var (k, v) in values) record[k] = double.IsFinite(v) ? Math.Round(v, 6) : v.ToString(CultureInfo.InvariantCulture);
        _jsonl.WriteLine(JsonSerializer.Serialize(record));
        if (_tensorboard is not null)
        {
            foreach (var (k, v) in values)
                if (double.IsFinite(v)) _tensorboard.add_scalar($"{kind}/{k}", (float)v, (int)Math.Min(step, int.MaxValue));
        }
    }

    public void Dispose()
    {
        _jsonl.Dispose();
    }
}
