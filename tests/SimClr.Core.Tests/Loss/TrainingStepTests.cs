using SimClr.Core.Loss;
using SimClr.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Loss;

public class TrainingStepTests
{
    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void Sgd_steps_on_a_fixed_batch_lower_the_nt_xent_loss(string device)
    {
        manual_seed(7);
        using var net = new SimClrNetwork(new ResNetOptions(Width: 0.125), projectionHidden: 32, projectionDim: 16);
        net.to(TestDevices.Get(device));
        var loss = new NtXentLoss(0.5);
        using var optimizer = optim.SGD(net.parameters(), learningRate: 0.05, momentum: 0.9);
        using var images = rand(8, 3, 8, 8).to(TestDevices.Get(device));
        // two views per image, interleaved: the image and its mirror image
        using var views = stack([images, images.flip(3)], dim: 1).reshape(16, 3, 8, 8);

        var losses = new List<double>();
        for (int step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var value = loss.Forward(net.forward(views));
            value.backward();
            optimizer.step();
            losses.Add(value.item<float>());
        }
        Assert.True(losses[^1] < losses[0] - 0.05, $"loss did not fall: {string.Join(", ", losses)}");
    }
}
