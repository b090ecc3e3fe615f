using SimClr.Core.Config;
using SimClr.Core.Loss;
using SimClr.Core.Replica;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Replica;

/// <summary>
/// The maths the distributed coordinator relies on, without a network: projections of shards, one global NT-Xent,
/// each shard back-propagating its slice of dL/dz, and the parameter gradients SUMMED (not averaged).
/// BN statistics are frozen here, so a shard's outputs do not depend on what else is in its batch.
/// </summary>
public class ShardedGradientTests
{
    private static ModelReplica Replica(int seed, string device) => TinyReplica.Build(seed, batchNorm: BatchNormStatistics.Frozen, device: device);

    private static (long, int)[] Views(int first, int count) =>
        Enumerable.Range(first, count).SelectMany(i => new[] { ((long)i, 0), ((long)i, 1) }).ToArray();

    private static Dictionary<string, Tensor> Gradients(ModelReplica replica) =>
        replica.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());

    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Shard_gradients_of_the_global_loss_sum_to_the_single_batch_gradient(string device)
    {
        using var scope = NewDisposeScope();
        manual_seed(4); // the images, not whatever the tests before this one left in torch's global generator
        var images = randint(0, 256, [8, 3, 32, 32]).to_type(ScalarType.Byte).repeat_interleave(2, dim: 0);
        var loss = new NtXentLoss(0.5);

        using var whole = Replica(seed: 11, device);
        var z = whole.Forward(images, Views(0, 8), epoch: 2);
        var (wholeLoss, wholeGradient) = loss.LossAndGradient(z);
        whole.ZeroGrad();
        whole.Backward(wholeGradient);
        var expected = Gradients(whole);

        using var first = Replica(seed: 11, device);
        using var second = Replica(seed: 11, device); // identical replicas, as after a broadcast
        var z1 = first.Forward(images.narrow(0, 0, 8), Views(0, 4), epoch: 2);
        var z2 = second.Forward(images.narrow(0, 8, 8), Views(4, 4), epoch: 2);
        var gathered = cat([z1, z2], 0);
        Assert.True(gathered.allclose(z, rtol: 0, atol: TestDevices.Exact(device) ? 1e-6 : 1e-5)); // same views in any shard (cuDNN may pick another kernel for another batch size)
        var (globalLoss, gradient) = loss.LossAndGradient(gathered);
        Assert.Equal(wholeLoss, globalLoss, 6);
        first.ZeroGrad();
        second.ZeroGrad();
        first.Backward(gradient.narrow(0, 0, 8));
        second.Backward(gradient.narrow(0, 8, 8));
        var g1 = Gradients(first);
        var g2 = Gradients(second);

        foreach (var (name, g) in expected)
        {
            var sum = g1[name] + g2[name];
            double scale = Math.Max(1e-8, g.abs().max().item<float>());
            Assert.True(sum.sub(g).abs().max().item<float>() <= 1e-5 * scale, $"{name}: summed shard gradients differ from the whole-batch gradient");
        }
        // and the mean would be wrong by a factor of two wherever the gradient is not zero
        var (someName, someGradient) = expected.First(kv => kv.Value.abs().max().item<float>() > 1e-4);
        Assert.False(((g1[someName] + g2[someName]) / 2).allclose(someGradient, rtol: 1e-3, atol: 0));
    }
}
