using SimClr.Core.Augmentation;
using SimClr.Core.Collectives;
using SimClr.Core.Data;
using SimClr.Core.Optim;

namespace SimClr.Core.Config;

/// <summary>Which training stage a run config drives.</summary>
public enum Stage
{
    Pretrain,
    LinearEval,
    Finetune,
    Supervised,
}
