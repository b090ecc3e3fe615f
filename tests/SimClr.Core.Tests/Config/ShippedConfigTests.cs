using SimClr.Core.Config;
using SimClr.Core.Experiments;

namespace SimClr.Core.Tests.Config;

/// <summary>Every config in configs/ loads and validates, and every experiment in configs/experiments/ resolves all
/// its cells' configs: a mistake in a shipped file is found here, not hours into a user's run.</summary>
public sealed class ShippedConfigTests
{
    private static string Configs()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "SimClr.Distributed.sln"))) return Path.Combine(folder.FullName, "configs");
        throw new DirectoryNotFoundException("configs/ of the repository not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string> StageConfigs() => [.. Directory.GetFiles(Configs(), "*.json").Select(f => Path.GetFileName(f)).Order()];

    public static TheoryData<string> Experiments() => [.. Directory.GetFiles(Path.Combine(Configs(), "experiments"), "*.json").Select(f => Path.GetFileName(f)).Order()];

    [Theory]
    [MemberData(nameof(StageConfigs))]
    public void A_stage_config_loads_and_says_what_it_is_for(string file)
    {
        var config = RunConfigLoader.Load(Path.Combine(Configs(), file), ["pretrained=\"random\""]); // what the evaluations are told on the command line
        Assert.False(string.IsNullOrWhiteSpace(config.Description), $"{file} has no description");
    }

    [Theory]
    [MemberData(nameof(Experiments))]
    public void An_experiment_resolves_the_config_of_every_cell(string file)
    {
        var plan = ExperimentPlan.Load(Path.Combine(Configs(), "experiments", file));
        Assert.NotEmpty(plan.Cells);
        foreach (var cell in plan.Cells)
        {
            var config = plan.Config(cell, pretrained: "/p/final.safetensors");
            Assert.Equal(cell.Stage, config.Stage);
            if (cell.Method?.Pretrained == true) Assert.Equal("/p/final.safetensors", config.Pretrained);
        }
    }

    /// <summary>Fine-tuning and training from scratch at one label fraction take the same optimiser steps: the
    /// comparison the label experiment exists for.</summary>
    [Fact]
    public void In_the_label_experiment_fine_tune_and_from_scratch_differ_only_in_their_start()
    {
        var plan = ExperimentPlan.Load(Path.Combine(Configs(), "experiments", "fashion-mnist-labels.json"));
        foreach (var fine in plan.Cells.Where(c => c.Stage == Stage.Finetune))
        {
            var scratch = plan.Cells.Single(c => c.Stage == Stage.Supervised && c.Fraction == fine.Fraction && c.Seed == fine.Seed);
            var a = plan.Config(fine, "/p/final.safetensors");
            var b = plan.Config(scratch, null);
            Assert.Equal(a with { Stage = Stage.Supervised, Pretrained = null, RunName = b.RunName }, b);
        }
    }
}
