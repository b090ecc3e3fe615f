using System.Globalization;
using System.Text.Json;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;

namespace SimClr.Core.Stages;

/// <summary>
/// One run's folder: config.json (resolved), metrics.jsonl (one JSON object per line, per step and per epoch),
/// events/ (TensorBoard), checkpoints/step-NNNNNNNN.safetensors (the last K kept), and plots written by the CLI.
/// </summary>
public sealed class RunDirectory
{
    private RunDirectory(string path) => Path = path;

    public string Path { get; }

    public string ConfigFile => System.IO.Path.Combine(Path, "config.json");

    public string MetricsFile => System.IO.Path.Combine(Path, "metrics.jsonl");

    public string EventsFolder => System.IO.Path.Combine(Path, "events");

    public string CheckpointsFolder => System.IO.Path.Combine(Path, "checkpoints");

    /// <summary>Creates a new run folder and writes the resolved config into it.</summary>
    public static RunDirectory Create(RunConfig config)
    {
        string name = config.RunName ?? $"{config.Stage.Name()}-{DateTime.Now:yyyyMMdd-HHmmss}";
        var run = new RunDirectory(System.IO.Path.GetFullPath(System.IO.Path.Combine(config.RunsFolder, name)));
        if (File.Exists(run.ConfigFile) && run.LatestCheckpoint() is not null)
            throw new ConfigException($"{run.Path} already holds a run with checkpoints; resume it with --resume {run.Path}, or choose another runName");
        run.IsNew = !Directory.Exists(run.Path);
        Directory.CreateDirectory(run.Path);
        AtomicFile.Write(run.ConfigFile, s => s.Write(System.Text.Encoding.UTF8.GetBytes(RunConfigLoader.Serialize(config))));
        return run;
    }

    /// <summary>Whether <see cref="Create"/> made the folder (it did not exist before).</summary>
    public bool IsNew { get; private set; }

    /// <summary>Removes a folder this process created when no checkpoint was written into it (a run refused at its start).</summary>
    public void DeleteIfUnused()
    {
        if (!IsNew || LatestCheckpoint() is not null) return;
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // it stays; nothing in it is needed
        }
    }

    /// <summary>An existing run folder (for --resume).</summary>
    public static RunDirectory Open(string path, bool requireConfig = true)
    {
        var run = new RunDirectory(System.IO.Path.GetFullPath(path));
        if (requireConfig && !File.Exists(run.ConfigFile)) throw new ConfigException($"{run.Path} is not a run directory (no config.json)");
        return run;
    }

    public string CheckpointPath(long step) => System.IO.Path.Combine(CheckpointsFolder, $"step-{step.ToString("D8", CultureInfo.InvariantCulture)}.safetensors");

    public string? LatestCheckpoint() =>
        Directory.Exists(CheckpointsFolder)
            ? Directory.EnumerateFiles(CheckpointsFolder, "step-*.safetensors").Order(StringComparer.Ordinal).LastOrDefault()
            : null;

    /// <summary>The checkpoints, newest first.</summary>
    public IReadOnlyList<string> Checkpoints() =>
        Directory.Exists(CheckpointsFolder)
            ? Directory.EnumerateFiles(CheckpointsFolder, "step-*.safetensors").Order(StringComparer.Ordinal).Reverse().ToList()
            : [];

    /// <summary>
    /// Removes the temporary files (<c>.name.PID.GUID.tmp</c>, see <see cref="AtomicFile"/>) that an interrupted
    /// write left in the run folder and its checkpoints folder: those of processes that are gone (a live writer's are
    /// kept). Returns the names removed.
    /// </summary>
    public IReadOnlyList<string> RemoveOrphanedTemporaries()
    {
        var removed = new List<string>();
        foreach (string folder in new[] { Path, CheckpointsFolder }.Where(Directory.Exists))
        {
            foreach (string file in Directory.EnumerateFiles(folder, ".*.tmp"))
            {
                string[] parts = System.IO.Path.GetFileName(file).Split('.');
                // "", name..., pid, guid, "tmp"
                if (parts.Length < 5 || !int.TryParse(parts[^3], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || IsRunning(pid)) continue;
                try
                {
                    File.Delete(file);
                    removed.Add(System.IO.Path.GetRelativePath(Path, file));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // left for the next start
                }
            }
        }
        return removed;
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// The newest checkpoint of the run that can be read whole. A damaged newest one (cut short by a crash or a full
    /// disk outside the atomic write, copied in part) is named through <paramref name="warn"/>, and the older intact one
    /// used: its later steps are redone.
    /// </summary>
    public string IntactCheckpoint(Action<string> warn)
    {
        var all = Checkpoints();
        if (all.Count == 0) throw new ConfigException($"{Path} has no checkpoint to resume from; start the run again");
        var damaged = new List<string>();
        foreach (string path in all)
        {
            try
            {
                using var checkpoint = Checkpoint.Load(path);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or FormatException or KeyNotFoundException)
            {
                damaged.Add($"{System.IO.Path.GetFileName(path)}: {e.Message}");
                continue;
            }
            if (damaged.Count > 0)
            {
                warn($"simclr: warning: {damaged.Count} newer checkpoint(s) cannot be read ({string.Join("; ", damaged)}); "
                    + $"resuming from the older intact {path} instead (the steps after it are done again)");
            }
            return path;
        }
        throw new ConfigException($"no checkpoint in {CheckpointsFolder} can be read ({string.Join("; ", damaged)}); start the run again");
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints.</summary>
    public void PruneCheckpoints(int keep)
    {
        foreach (var old in Directory.EnumerateFiles(CheckpointsFolder, "step-*.safetensors").Order(StringComparer.Ordinal).SkipLast(keep))
            File.Delete(old);
    }
}
