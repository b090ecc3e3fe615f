using System.Text.Json;
using SimClr.Core.Checkpoints;

namespace SimClr.Core.Experiments;

/// <summary>
/// cell.json in a cell's run directory, written (atomically) when the cell's stage finished: its metrics, the
/// wall time of its attempts and the checkpoint it ended with. A cell without one has not finished.
/// </summary>
public sealed record CellRecord
{
    public const string FileName = "cell.json";

    /// <summary>Seconds spent by attempts that stopped before the end (Ctrl-C, SIGTERM), carried into the final record.</summary>
    public const string PartialFileName = "cell-partial.json";

    public string Id { get; init; } = "";

    public string Method { get; init; } = "";

    public string Stage { get; init; } = "";

    public double Fraction { get; init; }

    public ulong Seed { get; init; }

    public Dictionary<string, double> Metrics { get; init; } = [];

    /// <summary>Wall seconds of the attempts that ended cleanly (one killed outright is not counted).</summary>
    public double Seconds { get; init; }

    public int Attempts { get; init; } = 1;

    public string? Checkpoint { get; init; }

    public DateTimeOffset Finished { get; init; }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };

    public void Write(string folder) => AtomicFile.Write(Path.Combine(folder, FileName), s => JsonSerializer.Serialize(s, this, Json));

    /// <summary>The record of a finished cell, or null. An unreadable record (cut short, edited) counts as not finished
    /// and is reported through <paramref name="warn"/>.</summary>
    public static CellRecord? TryRead(string folder, Action<string>? warn = null) => TryReadFile(Path.Combine(folder, FileName), warn);

    public static (double Seconds, int Attempts) ReadPartial(string folder)
    {
        var partial = TryReadFile(Path.Combine(folder, PartialFileName), null);
        return partial is null ? (0, 0) : (partial.Seconds, partial.Attempts);
    }

    public static void WritePartial(string folder, double seconds, int attempts) =>
        new CellRecord { Seconds = seconds, Attempts = attempts }.WriteAs(Path.Combine(folder, PartialFileName));

    private void WriteAs(string path) => AtomicFile.Write(path, s => JsonSerializer.Serialize(s, this, Json));

    private static CellRecord? TryReadFile(string path, Action<string>? warn)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<CellRecord>(File.ReadAllText(path), Json);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"{path} cannot be read ({e.Message}); the cell runs again");
            return null;
        }
    }
}
