using SimClr.Core.Augmentation;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Models;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>
/// ResNet-18 + Linear(features, classes) trained with labels: from a pre-trained backbone (fine-tune, the seed's
/// 88.1% experiment) or from scratch (supervised, the seed's 86% baseline), same schedule either way.
/// </summary>
public sealed class ClassifierTrainer : Trainer
{
    private readonly ImageDataSet _test;
    private readonly ViewAugmenter _evaluation;
    private long _correct;
    private long _seen;

    public ClassifierTrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer,
        IReadOnlyList<IReplicaEndpoint>? replicas = null)
        : base(config, train, run, observer, new ClassificationLoss(train.Labels), replicas)
    {
        _test = test;
        _evaluation = new ViewAugmenter(AugmentationOptions.None with { OutputSize = config.Augment.OutputSize }, 0, train.Mean, train.Std);
    }

    public ResNet Classifier => Replica.Backbone;

    protected override string StageName => Config.Stage == Stage.Finetune ? "finetune" : "supervised";

    protected override void OnApplied(StepResult result)
    {
        _correct += (long)result.Metrics["correct"];
        _seen += (long)result.Metrics["seen"];
    }

    protected override Dictionary<string, double> EndOfEpoch(int epoch, bool last)
    {
        var result = new Dictionary<string, double> { ["train_accuracy"] = _seen == 0 ? double.NaN : (double)_correct / _seen };
        if ((epoch + 1) % Config.TestEveryEpochs == 0 || last) result["test_accuracy"] = TestAccuracy();
        _correct = _seen = 0;
        return result;
    }

    public double TestAccuracy()
    {
        Mirror.Pull();
        var network = Replica.Network;
        network.eval();
        try
        {
            using var noGrad = no_grad();
            long correct = 0;
            for (int start = 0; start < _test.Count; start += 512)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(512, _test.Count - start);
                var logits = network.forward(_evaluation.Evaluate(_test.Images.narrow(0, start, n).to(Device)));
                var truth = tensor(_test.Labels.AsSpan(start, n).ToArray().Select(l => (long)l).ToArray(), device: Device);
                correct += logits.argmax(1).eq(truth).sum().item<long>();
            }
            return (double)correct / _test.Count;
        }
        finally
        {
            network.train();
        }
    }
}
