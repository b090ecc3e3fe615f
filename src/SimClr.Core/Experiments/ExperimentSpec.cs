using System.Text.Json;
using System.Text.Json.Serialization;
using SimClr.Core.Config;

namespace SimClr.Core.Experiments;

/// <summary>
/// A comparison run as cells (configs/experiments/*.json): one pre-training, then for every label fraction and seed
/// every method (fine-tune, from scratch, linear probe, kNN), each cell a run directory of its own under
/// <c>runsFolder/name/</c>. Stage configs are named relative to the experiment file.
/// </summary>
public sealed record ExperimentSpec
{
    public string? Description { get; init; }

    /// <summary>The experiment's folder under <see cref="RunsFolder"/>.</summary>
    public string Name { get; init; } = "";

    /// <summary>Relative to the working directory, like a stage's runsFolder.</summary>
    public string RunsFolder { get; init; } = "runs/experiments";

    /// <summary>Overrides applied to every cell (key.path=value), before the cell's own.</summary>
    public string[] Set { get; init; } = [];

    /// <summary>The pre-training whose final checkpoint the methods with <c>pretrained: true</c> start from.</summary>
    public PretrainSpec? Pretrain { get; init; }

    public FractionSpec[] LabelFractions { get; init; } = [];

    public MethodSpec[] Methods { get; init; } = [];

    /// <summary>The methods the plot draws (default: all); names from <see cref="Methods"/>.</summary>
    public string[]? Plot { get; init; }

    public const int MaxCells = 10_000;

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false) },
    };

    /// <summary>Reads and checks an experiment file; every problem found is reported in one <see cref="ConfigException"/>.</summary>
    public static ExperimentSpec Load(string path)
    {
        string text = RunConfigLoader.ReadText(path);
        ExperimentSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<ExperimentSpec>(text, Json);
        }
        catch (JsonException e)
        {
            string at = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at {e.Path.TrimStart('$', '.')}";
            throw new ConfigException($"experiment {path}: not a valid experiment file{at}: {e.Message.Split(" Path:")[0]}");
        }
        if (spec is null) throw new ConfigException($"experiment {path}: empty");
        var problems = spec.Problems();
        if (problems.Count > 0) throw new ConfigException($"experiment {path}:\n  - " + string.Join("\n  - ", problems));
        return spec;
    }

    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(Name) || Name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || Name is "." or "..")
            problems.Add($"name '{Name}' must be a folder name (the experiment's folder under runsFolder)");
        if (string.IsNullOrWhiteSpace(RunsFolder)) problems.Add("runsFolder must not be empty");
        if (Methods.Length == 0) problems.Add("methods: give at least one method (name, stage, config)");
        if (LabelFractions.Length == 0) problems.Add("labelFractions: give at least one fraction with its seeds");
        foreach (var f in LabelFractions)
        {
            if (!(f.Fraction > 0 && f.Fraction <= 1)) problems.Add($"labelFractions: fraction {f.Fraction} must be in (0, 1]");
            if (f.Seeds.Length == 0) problems.Add($"labelFractions: fraction {f.Fraction} has no seeds");
            if (f.Seeds.Distinct().Count() != f.Seeds.Length) problems.Add($"labelFractions: fraction {f.Fraction} repeats a seed");
        }
        if (LabelFractions.Select(f => FractionSpec.Label(f.Fraction)).Distinct().Count() != LabelFractions.Length)
            problems.Add("labelFractions: a fraction is listed twice");
        var names = new HashSet<string>();
        foreach (var m in Methods)
        {
            if (string.IsNullOrWhiteSpace(m.Name) || !m.Name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
                problems.Add($"methods: name '{m.Name}' must be letters, digits and '-'");
            else if (m.Name == PretrainSpec.CellId) problems.Add("methods: 'pretrain' is the pre-training cell's name; choose another");
            else if (!names.Add(m.Name)) problems.Add($"methods: '{m.Name}' is listed twice");
            if (m.Stage is not (Stage.Finetune or Stage.Supervised or Stage.LinearEval or Stage.KnnEval))
                problems.Add($"methods: '{m.Name}' has stage {m.Stage.Name()}; a method is finetune, supervised, linear-eval or knn-eval");
            if (string.IsNullOrWhiteSpace(m.Config)) problems.Add($"methods: '{m.Name}' needs config (a stage config file)");
            if (m.Pretrained && Pretrain is null) problems.Add($"methods: '{m.Name}' starts from the pre-training, but the experiment has no pretrain");
            if (m.Stage == Stage.Finetune && !m.Pretrained) problems.Add($"methods: '{m.Name}' is a finetune without pretrained: true; use stage supervised for training from scratch");
            if (m.Stage is Stage.LinearEval or Stage.KnnEval && !m.Pretrained && !m.Set.Any(s => s.StartsWith("pretrained=", StringComparison.Ordinal)))
                problems.Add($"methods: '{m.Name}' ({m.Stage.Name()}) needs pretrained: true, or set pretrained=\"random\" for the untrained baseline");
        }
        if (Pretrain is not null && string.IsNullOrWhiteSpace(Pretrain.Config)) problems.Add("pretrain: needs config (a pretrain config file)");
        foreach (string p in Plot ?? [])
            if (!names.Contains(p)) problems.Add($"plot: '{p}' is not one of the methods ({string.Join(", ", names)})");
        long cells = (long)LabelFractions.Sum(f => (long)f.Seeds.Length) * Methods.Length;
        if (cells > MaxCells) problems.Add($"{cells} cells is more than {MaxCells}");
        return problems;
    }
}

public sealed record PretrainSpec
{
    public const string CellId = "pretrain";

    /// <summary>A pretrain config file, relative to the experiment file.</summary>
    public string Config { get; init; } = "";

    public string[] Set { get; init; } = [];
}

public sealed record FractionSpec
{
    public double Fraction { get; init; }

    /// <summary>One cell per seed; the seed chooses the labelled subset and the run's initialisation and augmentation.</summary>
    public ulong[] Seeds { get; init; } = [0];

    /// <summary>The training schedule at this fraction (epochs, batchSize, warmupEpochs, ...): overrides applied to the
    /// finetune and supervised methods, which therefore take the same number of optimiser steps.</summary>
    public string[] Schedule { get; init; } = [];

    /// <summary>1%, 10%, 0.5%: a cell's name and a table column.</summary>
    public static string Label(double fraction) => (fraction * 100).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + "%";

    public static string FolderLabel(double fraction) => Label(fraction).Replace("%", "pct", StringComparison.Ordinal);
}

public sealed record MethodSpec
{
    public string Name { get; init; } = "";

    /// <summary>The table's row name (default: the name).</summary>
    public string? Title { get; init; }

    public Stage Stage { get; init; } = Stage.Finetune;

    /// <summary>A stage config file, relative to the experiment file.</summary>
    public string Config { get; init; } = "";

    /// <summary>Start from the pre-training cell's final checkpoint.</summary>
    public bool Pretrained { get; init; }

    public string[] Set { get; init; } = [];

    public string Row => Title ?? Name;
}
