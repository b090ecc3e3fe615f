using System.Globalization;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// A stage's checkpoints: written atomically into the run directory with the run's config and its skipped-step count,
/// the oldest pruned only once the new one is safe; and the exact restore of one, checked against the model first.
/// </summary>
public sealed class CheckpointKeeper(RunDirectory run, RunConfig config, string stage, ModelReplica replica, Action beforeReading)
{
    /// <summary>Checkpoint metadata: non-finite steps skipped so far in the run (faults.maxSkippedSteps counts over resumes).</summary>
    public const string SkippedStepsKey = "skipped_steps";

    /// <summary>Writes the checkpoint of <paramref name="step"/> steps done (after bringing this process's replica up
    /// to date); <see cref="CheckpointWriteException"/> when the disk refuses it, the previous one intact.</summary>
    public string Save(long step, long skipped)
    {
        beforeReading();
        string path = run.CheckpointPath(step);
        try
        {
            Checkpoint.Save(path, step, stage, RunConfigLoader.Serialize(config),
                replica.Network.state_dict().Select(kv => (kv.Key, kv.Value)), replica.Optimizer.State(),
                new Dictionary<string, string> { [SkippedStepsKey] = skipped.ToString(CultureInfo.InvariantCulture) });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointWriteException($"could not write checkpoint {path}: {e.Message} (disk full? no permission?); "
                + $"the previous checkpoint is intact: {run.LatestCheckpoint() ?? "none yet"}", e);
        }
        run.PruneCheckpoints(config.KeepCheckpoints); // only once the new one is safely written
        return path;
    }

    /// <summary>Loads <paramref name="checkpoint"/> into the replica; returns the skipped steps it counts (0 for older checkpoints).</summary>
    public long Restore(Checkpoint checkpoint)
    {
        if (checkpoint.Stage != stage) throw new InvalidDataException($"the checkpoint is from stage {checkpoint.Stage}, this run is {stage}");
        var state = replica.Network.state_dict();
        // every name, shape and dtype first: copy_ would broadcast a [1] tensor into [8] silently (and every later
        // checkpoint would carry it), or fail in native code for another width
        var mismatches = StateDictCheck.Compare(state, checkpoint.Model, checkTypes: true, allowExtra: false);
        if (mismatches.Count > 0)
        {
            throw new InvalidDataException($"checkpoint {checkpoint.Source ?? ""} does not fit this model ({mismatches.Count} tensor(s) differ): "
                + StateDictCheck.Describe(mismatches, Checkpoint.ModelPrefix)
                + ". Was it written with another model.width, projection size or data set? Resume with the run's own config.json, without --set model.*");
        }
        replica.Optimizer.LoadState(checkpoint.Optimizer); // checks names and shapes before it changes anything
        using (no_grad())
        {
            foreach (var (name, target) in state) target.copy_(checkpoint.Model[name]);
        }
        // the skipped-step budget is the run's, not the process's
        return checkpoint.Extra.TryGetValue(SkippedStepsKey, out string? count)
            && long.TryParse(count, NumberStyles.Integer, CultureInfo.InvariantCulture, out long before) && before >= 0 ? before : 0;
    }

    /// <summary>The latest checkpoint of the run, or "none" (for messages).</summary>
    public string Latest => run.LatestCheckpoint() ?? "none";
}
