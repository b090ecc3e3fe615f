using SimClr.Core.Config;
using SimClr.Core.Optim;

namespace SimClr.Core.Tests.Config;

public sealed class RunConfigTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-config-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Write(string json)
    {
        string path = Path.Combine(_folder, "c.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Defaults_are_the_seeds_recipe()
    {
        var config = RunConfigLoader.Load(null);
        Assert.Equal(256, config.BatchSize);
        Assert.Equal(0.5, config.Loss.Temperature);
        Assert.Equal(128, config.Model.ProjectionDim);
        Assert.Equal(2048, config.Model.ProjectionHidden);
        Assert.Equal(1.0, config.Model.Width);
        Assert.False(config.Loss.SeedSimilarityClamp);
        Assert.Equal(OptimizerKind.Lars, config.Optimizer.Kind);
    }

    [Fact]
    public void A_file_and_command_line_overrides_combine()
    {
        string path = Write("""{ "stage": "finetune", "batchSize": 64, "optimizer": { "kind": "sgd" }, "pretrained": "x.safetensors" }""");
        var config = RunConfigLoader.Load(path, ["batchSize=32", "loss.temperature=0.1", "data.name=cifar10", "optimizer.scaling=sqrt"]);
        Assert.Equal(Stage.Finetune, config.Stage);
        Assert.Equal(32, config.BatchSize);
        Assert.Equal(0.1, config.Loss.Temperature);
        Assert.Equal("cifar10", config.Data.Name);
        Assert.Equal(OptimizerKind.Sgd, config.Optimizer.Kind);
        Assert.Equal(LearningRateScaling.Sqrt, config.Optimizer.Scaling);
    }

    [Fact]
    public void Impossible_values_are_all_listed_in_one_error()
    {
        string path = Write("""{ "batchSize": 0, "loss": { "temperature": -1 }, "epochs": 0, "augment": { "flipProbability": 3 } }""");
        var e = Assert.Throws<ConfigException>(() => RunConfigLoader.Load(path));
        Assert.Contains("4 problems", e.Message);
        Assert.Contains("batchSize must be >= 1 (got 0)", e.Message);
        Assert.Contains("loss.temperature must be > 0 (got -1)", e.Message);
        Assert.Contains("epochs must be >= 1", e.Message);
        Assert.Contains("flipProbability", e.Message);
    }

    [Fact]
    public void Reduction_method_nccl_parses_and_refuses_the_rings_bfloat16()
    {
        Assert.Equal(ReductionMethod.Nccl, RunConfigLoader.Load(null, ["reduction.method=nccl"]).Reduction.Method);
        var e = Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["reduction.method=nccl", "reduction.precision=bfloat16"]));
        Assert.Contains("reduction.precision bfloat16 applies to the ring; NCCL sums the gradient in float32", e.Message);
        Assert.Contains("reduction.method must be one of auto, ring, star, nccl", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["reduction.method=mpi"])).Message);
    }

    [Fact]
    public void Unknown_keys_are_errors_naming_the_key()
    {
        var e = Assert.Throws<ConfigException>(() => RunConfigLoader.Load(Write("""{ "batchsize": 64 }""")));
        Assert.Contains("unknown key 'batchsize'", e.Message);
        e = Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["optimizer.momentun=0.5"]));
        Assert.Contains("momentun", e.Message);
    }

    [Fact]
    public void Every_problem_is_reported_together_and_a_misspelt_key_gets_a_suggestion()
    {
        string path = Write("""{ "batchsize": 64, "epochs": 0, "optimizer": { "momentun": 0.5, "kind": "adam" }, "threads": "two", "model": 3 }""");
        var e = Assert.Throws<ConfigException>(() => RunConfigLoader.Load(path, ["optimiser.kind=sgd", "loss.temperature=-1"]));
        Assert.Contains("8 problems", e.Message);
        Assert.Contains("unknown key 'batchsize' (did you mean 'batchSize'?)", e.Message);
        Assert.Contains("unknown key 'optimizer.momentun' (did you mean 'optimizer.momentum'?)", e.Message);
        Assert.Contains("unknown key 'optimiser' (did you mean 'optimizer'?)", e.Message);
        Assert.Contains("optimizer.kind must be one of sgd, lars (got \"adam\")", e.Message);
        Assert.Contains("threads must be a whole number", e.Message);
        Assert.Contains("model is a section", e.Message);
        Assert.Contains("epochs must be >= 1 (got 0)", e.Message);
        Assert.Contains("loss.temperature must be > 0 (got -1)", e.Message);
        Assert.Null(Spelling.Nearest("zzzzzzzz", ["epochs", "batchSize"]));
    }

    [Fact]
    public void Bad_json_bad_enum_values_and_missing_files_are_named()
    {
        Assert.Contains("not valid JSON", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(Write("{ \"epochs\": "))).Message);
        Assert.Contains("stage", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["stage=pretraining"])).Message);
        Assert.Contains("does not exist", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(Path.Combine(_folder, "none.json"))).Message);
        Assert.Contains("linear-eval needs pretrained", Assert.Throws<ConfigException>(() => RunConfigLoader.Load(null, ["stage=linear-eval"])).Message);
    }

    [Fact]
    public void The_resolved_config_round_trips()
    {
        var config = RunConfigLoader.Load(null, ["stage=supervised", "epochs=7", "labelFraction=0.1"]);
        string path = Write(RunConfigLoader.Serialize(config));
        Assert.Equal(config, RunConfigLoader.Load(path));
    }
}
