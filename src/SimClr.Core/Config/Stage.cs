namespace SimClr.Core.Config;

/// <summary>Which training stage a run config drives.</summary>
public enum Stage
{
    Pretrain,
    LinearEval,
    Finetune,
    Supervised,
    KnnEval,
}

public static class StageNames
{
    /// <summary>The stage as configs, commands and run folders spell it: pretrain, linear-eval, knn-eval, ...</summary>
    public static string Name(this Stage stage) => System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(stage.ToString());
}
