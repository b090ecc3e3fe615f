using SimClr.Core.Optim;
using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Evaluation;

/// <summary>
/// The linear evaluation protocol on frozen features: a Linear(features, classes) trained with cross-entropy on
/// features extracted once (the backbone is never touched), SGD with momentum and a cosine schedule.
/// </summary>
public static class LinearProbe
{
    public static LinearProbeResult Train(Tensor trainFeatures, int[] trainLabels, Tensor testFeatures, int[] testLabels, int classes,
        int epochs = 100, int batchSize = 256, double learningRate = 0.1, double weightDecay = 1e-6, ulong seed = 0, Action<int, double, double>? epochDone = null,
        Func<int, long[], Tensor>? augmentedFeatures = null)
    {
        var device = trainFeatures.device;
        // standardise with training statistics: makes one learning rate work across backbones and widths
        using var mean = trainFeatures.mean([0], keepdim: true);
        using var epsilon = Scalars.Of(1e-6); // held: see Runtime.Scalars
        using var std = trainFeatures.std(0, keepdim: true).ShiftInPlace(epsilon);
        using var centredTrain = trainFeatures.Minus(mean);
        using var centredTest = testFeatures.Minus(mean);
        using var xTrain = centredTrain.div(std);
        using var xTest = centredTest.div(std);
        using var yTrain = tensor(trainLabels.Select(l => (long)l).ToArray(), device: device);
        using var yTest = tensor(testLabels.Select(l => (long)l).ToArray(), device: device);
        using var generator = new Generator(seed + 17);
        using var classifier = nn.Linear(trainFeatures.shape[1], classes);
        using (no_grad())
        {
            nn.init.normal_(classifier.weight!, 0, 0.01, generator);
            nn.init.zeros_(classifier.bias!);
        }
        classifier.to(device);
        using var optimizer = new MomentumOptimizer(classifier.named_parameters().Select(p => (p.name, p.parameter)),
            new OptimizerOptions { Kind = OptimizerKind.Sgd, BaseLearningRate = learningRate, Scaling = LearningRateScaling.None, WeightDecay = weightDecay });
        int n = trainLabels.Length, perEpoch = Math.Max(1, (n + batchSize - 1) / batchSize);
        var schedule = new LearningRateSchedule(learningRate, 0, (long)epochs * perEpoch);
        var trainAccuracy = new List<double>();
        var testAccuracy = new List<double>();
        var sampler = new Data.EpochSampler(n, Math.Min(batchSize, n), seed);
        long step = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var order = sampler.Permutation(epoch);
            long correct = 0;
            for (int start = 0; start < n; start += batchSize, step++)
            {
                using var scope = NewDisposeScope();
                int size = Math.Min(batchSize, n - start);
                var index = tensor(order.AsSpan(start, size).ToArray(), device: device);
                // the paper's protocol: features of freshly augmented views (standardised with the plain views' statistics)
                var features = augmentedFeatures is null ? xTrain.index_select(0, index)
                    : augmentedFeatures(epoch, order.AsSpan(start, size).ToArray()).Minus(mean).div(std);
                var logits = classifier.forward(features);
                var target = yTrain.index_select(0, index);
                var loss = nn.functional.cross_entropy(logits, target);
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step(schedule.At(step));
                correct += logits.argmax(1).eq(target).sum().item<long>();
            }
            trainAccuracy.Add((double)correct / n);
            testAccuracy.Add(Accuracy(classifier, xTest, yTest));
            epochDone?.Invoke(epoch, trainAccuracy[^1], testAccuracy[^1]);
        }
        return new LinearProbeResult(trainAccuracy, testAccuracy);
    }

    private static double Accuracy(nn.Module<Tensor, Tensor> classifier, Tensor x, Tensor y)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return classifier.forward(x).argmax(1).eq(y).to_type(ScalarType.Float64).mean().item<double>();
    }
}
