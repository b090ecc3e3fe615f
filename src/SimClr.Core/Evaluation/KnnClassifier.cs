using static TorchSharp.torch;

namespace SimClr.Core.Evaluation;

/// <summary>
/// The kNN monitor of common SimCLR code (Wu et al. 2018's weighted kNN): cosine similarity of L2-normalised
/// features, the k nearest training features vote for their class with weight exp(similarity / T).
/// </summary>
public static class KnnClassifier
{
    /// <summary>Top-1 accuracy of <paramref name="testFeatures"/> against a bank of training features.</summary>
    public static double Accuracy(Tensor trainFeatures, int[] trainLabels, Tensor testFeatures, int[] testLabels, int classes, int k = 200, double temperature = 0.1, int chunk = 512)
    {
        using var scope = NewDisposeScope();
        var device = trainFeatures.device;
        var bank = nn.functional.normalize(trainFeatures, dim: 1);
        var bankLabels = tensor(trainLabels.Select(l => (long)l).ToArray(), device: device);
        var truth = tensor(testLabels.Select(l => (long)l).ToArray(), device: device);
        k = Math.Min(k, trainLabels.Length);
        long correct = 0;
        using var t = Runtime.Scalars.Of(temperature); // held: see Runtime.Scalars
        for (int start = 0; start < testLabels.Length; start += chunk)
        {
            using var inner = NewDisposeScope();
            int n = Math.Min(chunk, testLabels.Length - start);
            var query = nn.functional.normalize(testFeatures.narrow(0, start, n), dim: 1);
            var (similarity, index) = query.mm(bank.t()).topk(k, dim: 1);
            var weights = similarity.div(t).exp();
            var votes = zeros(n, classes, device: device).scatter_add_(1, bankLabels[index], weights);
            correct += votes.argmax(1).eq(truth.narrow(0, start, n)).sum().item<long>();
        }
        return (double)correct / testLabels.Length;
    }
}
