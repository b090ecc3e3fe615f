using System.CommandLine;
using SimClr.Core.Config;

namespace SimClr.Cli.Commands;

/// <summary>
/// Options that several commands take, each defined here once: its name, aliases and type. Where the commands mean
/// something different by it, the caller gives the description and default (a worker's --threads is not a
/// benchmark's). The options of a run from a config are <see cref="RunOptions"/>.
/// </summary>
internal static class CommonOptions
{
    /// <summary>--set/-s key.path=value, repeatable.</summary>
    public static Option<string[]> Set(string description) => new("--set", "-s") { Description = description, AllowMultipleArgumentsPerToken = true };

    /// <summary>--plain: log lines instead of a progress bar.</summary>
    public static Option<bool> Plain(string description) => new("--plain") { Description = description };

    /// <summary>--stage of a distributed run: pretrain (the default), finetune or supervised; read with <see cref="ToStage"/>.</summary>
    public static Option<string> DistributedStage(string description)
    {
        var stage = new Option<string>("--stage") { Description = description, DefaultValueFactory = _ => "pretrain" };
        stage.AcceptOnlyFromAmong("pretrain", "finetune", "supervised");
        return stage;
    }

    /// <summary>The stage a <see cref="DistributedStage"/> value names.</summary>
    public static Stage ToStage(string name) => name switch
    {
        "finetune" => Stage.Finetune,
        "supervised" => Stage.Supervised,
        _ => Stage.Pretrain,
    };

    /// <summary>--parent-pid, hidden: the process stops when this one is gone (simclr launch sets it for its children).</summary>
    public static Option<int?> ParentPid() => new("--parent-pid") { Description = "stop when this process is gone (set by simclr launch)", Hidden = true };

    /// <summary>--token-file: the file holding the run token.</summary>
    public static Option<string?> TokenFile(string description) => new("--token-file") { Description = description };

    /// <summary>--device: cpu, cuda, cuda:1, ... (default cpu).</summary>
    public static Option<string> Device(string description) => new("--device") { Description = description, DefaultValueFactory = _ => "cpu" };

    /// <summary>--threads: torch intra-op threads.</summary>
    public static Option<int> Threads(string description, int defaultValue) => new("--threads") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>--repeats: how many times a benchmark measures.</summary>
    public static Option<int> Repeats(string description, int defaultValue) => new("--repeats") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>--steps: training steps a benchmark runs.</summary>
    public static Option<int> Steps(string description, int defaultValue) => new("--steps") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>--batch: images (or views) per call.</summary>
    public static Option<int> Batch(string description, int defaultValue) => new("--batch") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>--quick: a benchmark's short run.</summary>
    public static Option<bool> Quick(string description) => new("--quick") { Description = description };

    /// <summary>--out: the file to write.</summary>
    public static Option<string> Out(string description, string defaultValue) => new("--out") { Description = description, DefaultValueFactory = _ => defaultValue };
}
