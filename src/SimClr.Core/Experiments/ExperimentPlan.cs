using System.Text.Json;
using SimClr.Core.Config;

namespace SimClr.Core.Experiments;

/// <summary>One cell of an experiment: a stage run with its own run directory.</summary>
/// <param name="Method">null for the pre-training cell.</param>
public sealed record ExperimentCell(string Id, MethodSpec? Method, double Fraction, ulong Seed, string Folder)
{
    public bool IsPretrain => Method is null;

    public Stage Stage => Method?.Stage ?? Stage.Pretrain;

    /// <summary>Whether the stage writes checkpoints, so an interrupted run continues (the evaluations are rerun).</summary>
    public bool Resumable => Stage is Stage.Pretrain or Stage.Finetune or Stage.Supervised;

    public string Describe() => IsPretrain ? "pre-training" : $"{Method!.Row} at {FractionSpec.Label(Fraction)} labels, seed {Seed}";
}

/// <summary>An experiment's cells in the order they run (the pre-training first), and the config of each.</summary>
public sealed class ExperimentPlan
{
    private ExperimentPlan(ExperimentSpec spec, string specFolder, string folder, IReadOnlyList<ExperimentCell> cells)
    {
        Spec = spec;
        SpecFolder = specFolder;
        Folder = folder;
        Cells = cells;
    }

    public ExperimentSpec Spec { get; }

    /// <summary>The experiment file's folder: stage configs are named relative to it.</summary>
    public string SpecFolder { get; }

    /// <summary>runsFolder/name, absolute.</summary>
    public string Folder { get; }

    public IReadOnlyList<ExperimentCell> Cells { get; }

    public ExperimentCell? PretrainCell => Cells.FirstOrDefault(c => c.IsPretrain);

    public static ExperimentPlan Load(string path) => Create(ExperimentSpec.Load(path), Path.GetDirectoryName(Path.GetFullPath(path))!);

    public static ExperimentPlan Create(ExperimentSpec spec, string specFolder)
    {
        string folder = Path.GetFullPath(Path.Combine(spec.RunsFolder, spec.Name));
        var cells = new List<ExperimentCell>();
        if (spec.Pretrain is not null) cells.Add(new ExperimentCell(PretrainSpec.CellId, null, 1, 0, Path.Combine(folder, PretrainSpec.CellId)));
        // the smallest fraction first (its cells are the cheapest), all methods of a seed together: a partial report compares them
        foreach (var fraction in spec.LabelFractions.OrderBy(f => f.Fraction))
            foreach (ulong seed in fraction.Seeds)
                foreach (var method in spec.Methods)
                {
                    string id = $"{method.Name}-{FractionSpec.FolderLabel(fraction.Fraction)}-seed{seed}";
                    cells.Add(new ExperimentCell(id, method, fraction.Fraction, seed, Path.Combine(folder, id)));
                }
        var plan = new ExperimentPlan(spec, specFolder, folder, cells);
        plan.CheckConfigs();
        return plan;
    }

    /// <summary>The resolved config of a cell. <paramref name="pretrained"/> is the pre-training's final checkpoint
    /// (for methods that start from it; a placeholder is enough to check the config before it exists).</summary>
    public RunConfig Config(ExperimentCell cell, string? pretrained)
    {
        var overrides = new List<string> { $"stage={cell.Stage.Name()}" };
        overrides.AddRange(Spec.Set);
        string file;
        if (cell.IsPretrain)
        {
            file = Spec.Pretrain!.Config;
            overrides.AddRange(Spec.Pretrain.Set);
        }
        else
        {
            var method = cell.Method!;
            file = method.Config;
            if (method.Stage is Stage.Finetune or Stage.Supervised) overrides.AddRange(Spec.LabelFractions.First(f => f.Fraction == cell.Fraction).Schedule);
            overrides.AddRange(method.Set);
            overrides.Add($"labelFraction={cell.Fraction.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}");
            overrides.Add($"seed={cell.Seed}");
            if (method.Pretrained) overrides.Add($"pretrained={JsonSerializer.Serialize(pretrained ?? Path.Combine(Folder, PretrainSpec.CellId, "checkpoints", "final.safetensors"))}");
        }
        overrides.Add($"runsFolder={JsonSerializer.Serialize(Folder)}");
        overrides.Add($"runName={JsonSerializer.Serialize(cell.Id)}");
        string path = Path.Combine(SpecFolder, file);
        try
        {
            return RunConfigLoader.Load(path, overrides);
        }
        catch (ConfigException e)
        {
            throw new ConfigException($"experiment cell {cell.Id} ({file} with the experiment's values): {e.Message}");
        }
    }

    /// <summary>Every cell's config, resolved before anything runs: a mistake in the last cell's values is found now,
    /// not hours later.</summary>
    private void CheckConfigs()
    {
        var problems = new List<string>();
        foreach (var cell in Cells)
        {
            try
            {
                var config = Config(cell, pretrained: null);
                if (config.Stage != cell.Stage) problems.Add($"{cell.Id}: its config resolves to stage {config.Stage}");
            }
            catch (ConfigException e)
            {
                problems.Add(e.Message);
            }
        }
        if (problems.Count > 0) throw new ConfigException(string.Join("\n", problems.Distinct()));
    }
}
