using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SimClr.Core.Stages;

/// <summary>Appends metrics to metrics.jsonl (written through per line, so a crash loses nothing written) and TensorBoard events.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly string _jsonlPath;
    private readonly string _eventsFolder;
    private readonly StreamWriter _jsonl;
    private readonly TensorBoardEvents? _tensorboard;
    private bool _failed;

    public MetricsLog(RunDirectory run, bool tensorboard = true)
    {
        _jsonlPath = run.MetricsFile;
        _eventsFolder = run.EventsFolder;
        // unbuffered below the writer: each line reaches the file (or fails) in WriteLine, not later in Dispose
        _jsonl = Guard(_jsonlPath, () => new StreamWriter(new FileStream(_jsonlPath, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0), new UTF8Encoding(false)));
        _jsonl.AutoFlush = true;
        try
        {
            if (tensorboard) _tensorboard = Guard(_eventsFolder, () => new TensorBoardEvents(_eventsFolder));
        }
        catch
        {
            _jsonl.Dispose();
            throw;
        }
    }

    /// <summary>One record: kind ("step", "epoch", "eval", ...), the global step, and named values.</summary>
    /// <exception cref="RunOutputException">metrics.jsonl or the events file refused the record (disk full, ...).</exception>
    public void Write(string kind, long step, IReadOnlyDictionary<string, double> values, IReadOnlyDictionary<string, string>? labels = null)
    {
        var record = new Dictionary<string, object> { ["kind"] = kind, ["step"] = step, ["time"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture) };
        foreach (var (k, v) in labels ?? new Dictionary<string, string>()) record[k] = v;
        foreach (var (k, v) in values) record[k] = double.IsFinite(v) ? Math.Round(v, 6) : v.ToString(CultureInfo.InvariantCulture);
        Guard(_jsonlPath, () => _jsonl.WriteLine(JsonSerializer.Serialize(record)));
        if (_tensorboard is not null)
        {
            Guard(_eventsFolder, () => _tensorboard.AddScalars(step, values.Where(kv => double.IsFinite(kv.Value)).Select(kv => ($"{kind}/{kv.Key}", (float)kv.Value))));
        }
    }

    private void Guard(string path, Action write) => Guard(path, () =>
    {
        write();
        return 0;
    });

    private T Guard<T>(string path, Func<T> write)
    {
        try
        {
            return write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failed = true;
            throw new RunOutputException($"could not write {path}: {e.Message} (disk full? no permission?)", e) { Path = path };
        }
    }

    public void Dispose()
    {
        try
        {
            _jsonl.Dispose();
        }
        catch (IOException) when (_failed)
        {
            // the write that failed was reported already; the handle is closed regardless
        }
    }
}
