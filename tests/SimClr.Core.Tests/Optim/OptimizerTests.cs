using SimClr.Core.Optim;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Optim;

public class OptimizerTests
{
    private static (Parameter W, Parameter B) Parameters()
    {
        var w = new Parameter(tensor(new double[] { 3, 4 }).reshape(1, 2)); // |w| = 5
        var b = new Parameter(tensor(new double[] { 1 }));
        w.grad = tensor(new double[] { 0.6, 0.8 }).reshape(1, 2); // |g| = 1
        b.grad = tensor(new double[] { 2 });
        return (w, b);
    }

    [Fact]
    public void Lars_scales_by_the_trust_ratio_and_spares_one_dimensional_parameters()
    {
        var (w, b) = Parameters();
        var options = new OptimizerOptions { Kind = OptimizerKind.Lars, Momentum = 0.9, WeightDecay = 0.1, TrustCoefficient = 0.001 };
        using var optimizer = new MomentumOptimizer([("w", w), ("b", b)], options);
        optimizer.Step(learningRate: 2.0);
        // w: g' = g + 0.1 w = (0.9, 1.2), |g'| = 1.5; ratio = 0.001 * 5 / 1.5; v = 2 * ratio * g'; w -= v
        double ratio = 0.001 * 5 / 1.5;
        Assert.Equal(3 - 2 * ratio * 0.9, w[0, 0].item<double>(), 12);
        Assert.Equal(4 - 2 * ratio * 1.2, w[0, 1].item<double>(), 12);
        // b: no decay, no trust ratio: v = 2 * 2
        Assert.Equal(1 - 4, b[0].item<double>(), 12);
        // momentum: a second step with the same gradients adds 0.9 v
        optimizer.Step(learningRate: 2.0);
        Assert.Equal(-3 - (0.9 * 4 + 4), b[0].item<double>(), 12);
    }

    [Fact]
    public void Sgd_is_pytorchs_momentum_sgd_with_decay_only_on_weights()
    {
        var (w, b) = Parameters();
        using var optimizer = new MomentumOptimizer([("w", w), ("b", b)], new OptimizerOptions { Kind = OptimizerKind.Sgd, Momentum = 0.9, WeightDecay = 0.1 });
        optimizer.Step(0.5);
        Assert.Equal(3 - 0.5 * 0.9, w[0, 0].item<double>(), 12);
        Assert.Equal(1 - 0.5 * 2, b[0].item<double>(), 12);
        optimizer.Step(0.5); // v_w = 0.9 * 0.9 + (0.6 + 0.1 * 2.55)
        Assert.Equal(2.55 - 0.5 * (0.81 + 0.6 + 0.255), w[0, 0].item<double>(), 12);
    }

    [Fact]
    public void Momentum_state_round_trips_by_name()
    {
        var (w, b) = Parameters();
        using var first = new MomentumOptimizer([("w", w), ("b", b)], new OptimizerOptions());
        first.Step(1);
        var state = first.State().ToDictionary(s => s.Name, s => s.Tensor.clone());
        var (w2, b2) = Parameters();
        using var second = new MomentumOptimizer([("w", w2), ("b", b2)], new OptimizerOptions());
        second.LoadState(state);
        Assert.True(second.State().Single(s => s.Name == "w").Tensor.equal(state["w"]).all().item<bool>());
        Assert.Contains("does not have", Assert.Throws<InvalidDataException>(() => second.LoadState(new Dictionary<string, Tensor> { ["x"] = zeros(1) })).Message);
    }

    [Theory]
    [InlineData(LearningRateScaling.Linear, 4096, 0.3 * 16)]
    [InlineData(LearningRateScaling.Sqrt, 4096, 0.3 * 64)]
    [InlineData(LearningRateScaling.None, 4096, 0.3)]
    public void Peak_learning_rate_scales_with_the_batch(LearningRateScaling scaling, int batch, double expected) =>
        Assert.Equal(expected, new OptimizerOptions { Scaling = scaling }.PeakLearningRate(batch), 12);

    [Fact]
    public void Schedule_warms_up_linearly_then_decays_as_a_cosine_to_zero()
    {
        var schedule = new LearningRateSchedule(Peak: 2, WarmupSteps: 10, TotalSteps: 110);
        Assert.Equal(0.2, schedule.At(0), 12);
        Assert.Equal(2.0, schedule.At(9), 12);
        Assert.Equal(2.0, schedule.At(10), 12);
        Assert.Equal(1.0, schedule.At(60), 12);
        Assert.Equal(0.0, schedule.At(110), 12);
        Assert.True(schedule.At(30) > schedule.At(31));
    }
}
