using SimClr.Core.Config;

namespace SimClr.Core.Tests.Config;

public sealed class ReadmeTests
{
    private static string Readme()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            string path = Path.Combine(folder.FullName, "README.md");
            if (File.Exists(path) && File.Exists(Path.Combine(folder.FullName, "SimClr.Distributed.sln"))) return File.ReadAllText(path);
        }
        throw new FileNotFoundException("README.md of the repository not found above " + AppContext.BaseDirectory);
    }

    /// <summary>README said metrics.jsonl had a record per step; the trainer writes one every logEverySteps steps (10).</summary>
    [Fact]
    public void The_readme_says_how_often_metrics_jsonl_gets_a_step_record()
    {
        string readme = Readme().ReplaceLineEndings(" ").Replace("  ", " ", StringComparison.Ordinal);
        Assert.DoesNotContain("`metrics.jsonl` (per step", readme, StringComparison.Ordinal);
        Assert.Contains($"`metrics.jsonl` (a step record every `logEverySteps` steps, default {new RunConfig().LogEverySteps},", readme, StringComparison.Ordinal);
    }
}
