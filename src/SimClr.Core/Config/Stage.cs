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
