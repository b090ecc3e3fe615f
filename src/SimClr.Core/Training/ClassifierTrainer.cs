using SimClr.Core.Augmentation;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Models;
using SimClr.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Training;

/// <summary>
/// ResNet-18 + Linear(features, classes) trained with labels: from a pre-trained backbone (fine-tune, the seed's
/// 88.1% experiment) or from scratch (supervised, the seed's 86% baseline), same schedule either way.
/// </summary>
public sealed class ClassifierTrainer : Trainer
{
    private readonly ImageDataSet _test;
    private readonly ResNet18 _network;
    private readonly MomentumOptimizer _optimizer;
    private readonly ViewAugmenter _augmenter;
    private readonly ViewAugmenter _evaluation;
    private long _correct;
    private long _seen;

    public ClassifierTrainer(RunConfig config, ImageDataSet train, ImageDataSet test, RunDirectory run, ITrainingObserver observer)
        : base(config, train, run, observer)
    {
        _test = test;
        manual_seed((long)config.Seed);
        _network = new ResNet18(new ResNetOptions(config.Model.Width, train.Channels), train.ClassNames.Count);
        if (config.Stage == Stage.Finetune)
        {
            if (config.Pretrained is null) throw new ConfigException("finetune needs pretrained: a pre-training checkpoint or exported backbone");
            var weights = BackboneWeights.Load(config.Pretrained);
            try
            {
                BackboneWeights.LoadInto(_network, weights, config.Pretrained);
            }
            finally
            {
                foreach (var t in weights.Values) t.Dispose();
            }
        }
        _network.to(Device);
        _optimizer = new MomentumOptimizer(_network.named_parameters().Select(p => (p.name, p.parameter)), config.Optimizer);
        _augmenter = new ViewAugmenter(config.Augment, config.Seed, train.Mean, train.Std);
        _evaluation = new ViewAugmenter(AugmentationOptions.None with { OutputSize = config.Augment.OutputSize }, 0, train.Mean, train.Std);
    }

    public ResNet18 Classifier => _network;

    protected override string StageName => Config.Stage == Stage.Finetune ? "finetune" : "supervised";

    protected override nn.Module Network => _network;

    protected override MomentumOptimizer Optimizer => _optimizer;

    protected override (double Loss, Dictionary<string, double> Metrics) TrainStep(long[] indices, int epoch, double learningRate)
    {
        using var scope = NewDisposeScope();
        _network.train();
        var views = indices.Select(i => (i, 0)).ToArray();
        var input = _augmenter.Views(Train.Batch(indices).to(Device), views, epoch);
        var target = tensor(indices.Select(i => (long)Train.Labels[i]).ToArray(), device: Device);
        var logits = _network.forward(input);
        var loss = nn.functional.cross_entropy(logits, target);
        double value = loss.ToDouble();
        if (!double.IsFinite(value)) return (value, []);
        _optimizer.ZeroGrad();
        loss.backward();
        _optimizer.Step(learningRate);
        _correct += logits.argmax(1).eq(target).sum().item<long>();
        _seen += indices.Length;
        return (value, []);
    }

    protected override Dictionary<string, double> EndOfEpoch(int epoch, bool last)
    {
        var result = new Dictionary<string, double>
        {
            ["train_accuracy"] = _seen == 0 ? double.NaN : (double)_correct / _seen,
            ["test_accuracy"] = TestAccuracy(),
        };
        _correct = _seen = 0;
        return result;
    }

    public double TestAccuracy()
    {
        _network.eval();
        try
        {
            using var noGrad = no_grad();
            long correct = 0;
            for (int start = 0; start < _test.Count; start += 512)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(512, _test.Count - start);
                var logits = _network.forward(_evaluation.Evaluate(_test.Images.narrow(0, start, n).to(Device)));
                var truth = tensor(_test.Labels.AsSpan(start, n).ToArray().Select(l => (long)l).ToArray(), device: Device);
                correct += logits.argmax(1).eq(truth).sum().item<long>();
            }
            return (double)correct / _test.Count;
        }
        finally
        {
            _network.train();
        }
    }

    public override void Dispose()
    {
        _optimizer.Dispose();
        _network.Dispose();
    }
}
