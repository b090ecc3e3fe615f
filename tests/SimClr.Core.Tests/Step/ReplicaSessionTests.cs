using SimClr.Core.Config;
using SimClr.Core.Step;
using SimClr.Core.Tests.Replica;

namespace SimClr.Core.Tests.Step;

/// <summary>The replica's domain object keeps its calls in order and applies the gradient it is told to.</summary>
public sealed class ReplicaSessionTests
{
    private static ReplicaSession Session() => new(TinyReplica.Build(3, batchNorm: BatchNormStatistics.Frozen, ownsModel: true));

    private static ShardWork Shard()
    {
        var images = new byte[4 * 3 * 32 * 32];
        new Random(1).NextBytes(images);
        return new ShardWork(0, 0, new ShardRows([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 2, 3], [4]), [4, 3, 32, 32], images);
    }

    private static FloatBlock Dz(long[] shape)
    {
        var values = Enumerable.Range(0, (int)(shape[0] * shape[1])).Select(i => (float)Math.Sin(i)).ToArray();
        return new FloatBlock(shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    [Fact]
    public void Calls_out_of_order_are_refused_with_what_is_missing_and_change_nothing()
    {
        using var session = Session();
        string start = session.Replica.Checksum();
        Assert.Contains("Backward needs a Forward first", Assert.Throws<InvalidOperationException>(() => session.Backward(Dz([4, 8]), returnGradient: false)).Message);
        Assert.Contains("BackwardReduce first", Assert.Throws<InvalidOperationException>(() => session.Apply(0.1, StepGradient.Ring)).Message);
        Assert.Contains("needs a Backward first", Assert.Throws<InvalidOperationException>(() => session.Apply(0.1, StepGradient.Own)).Message);
        var z = session.Forward(Shard()).Value;
        Assert.Equal(z.Shape, session.PendingProjections);
        Assert.Contains("needs a Backward first", Assert.Throws<InvalidOperationException>(() => session.Apply(0.1, StepGradient.Own)).Message);
        Assert.Equal(start, session.Replica.Checksum()); // nothing applied
    }

    [Fact]
    public void Own_gradient_and_the_same_gradient_sent_back_apply_the_same_step()
    {
        using var own = Session();
        using var sent = Session();
        var z = own.Forward(Shard()).Value;
        sent.Forward(Shard());
        var (gradient, times) = sent.Backward(Dz(z.Shape), returnGradient: true);
        Assert.True(times.ForwardMs == 0 && times.BackwardMs > 0); // the call's own phases only
        own.Backward(Dz(z.Shape), returnGradient: false);
        Assert.Null(own.PendingProjections);
        string a = own.Apply(0.1, StepGradient.Own).Value!;
        string b = sent.Apply(0.1, StepGradient.Sent(gradient!.ToFloat32())).Value!;
        Assert.Equal(a, b);
        Assert.Contains("needs a Backward first", Assert.Throws<InvalidOperationException>(() => own.Apply(0.1, StepGradient.Own)).Message); // once per backward
    }
}
