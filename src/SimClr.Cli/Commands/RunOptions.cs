using System.CommandLine;

namespace SimClr.Cli.Commands;

/// <summary>
/// The options of a run from a config, defined once for the stage commands, the coordinator and the launcher: each
/// lists the ones it takes in its own order (that is the order of its --help).
/// </summary>
internal sealed class RunOptions(string pretrainedDescription = "checkpoint or exported backbone to start from")
{
    public Option<string?> Config { get; } = new("--config", "-c") { Description = "run config (JSON); see configs/" };

    public Option<string[]> Set { get; } = CommonOptions.Set("override a config value: key.path=value (repeatable)");

    public Option<string?> Resume { get; } = new("--resume") { Description = "continue the run in this run directory from its last checkpoint" };

    public Option<string?> Pretrained { get; } = new("--pretrained") { Description = pretrainedDescription };

    public Option<bool> Plain { get; } = CommonOptions.Plain("plain log lines instead of a progress bar");

    /// <summary>The values of a command that takes all five.</summary>
    public RunArguments Read(ParseResult result) =>
        new(result.GetValue(Config), result.GetValue(Set) ?? [], result.GetValue(Resume), result.GetValue(Pretrained), result.GetValue(Plain));

    /// <summary>--config, --resume, --pretrained and every --set as given, for another simclr process (the launcher's coordinator).</summary>
    public IEnumerable<string> PassOn(ParseResult result)
    {
        var given = new List<string>();
        if (result.GetValue(Config) is { } config) given.AddRange(["--config", config]);
        if (result.GetValue(Resume) is { } resume) given.AddRange(["--resume", resume]);
        if (result.GetValue(Pretrained) is { } pretrained) given.AddRange(["--pretrained", pretrained]);
        foreach (string value in result.GetValue(Set) ?? []) given.AddRange(["--set", value]);
        return given;
    }
}

/// <summary>What <see cref="RunOptions"/> read: the config file, its --set overrides, the run to resume, the weights to start from, plain output.</summary>
internal sealed record RunArguments(string? ConfigPath, string[] Overrides, string? Resume, string? Pretrained, bool Plain);
