using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Runtime;

public class TorchThreadTests
{
    [Fact]
    public async Task All_work_runs_on_one_thread_one_item_at_a_time_in_submission_order()
    {
        using var torchThread = new TorchThread();
        int running = 0, overlaps = 0;
        var order = new List<int>();
        var threads = new HashSet<int>();
        var tasks = Enumerable.Range(0, 50).Select(i => Task.Run(() => torchThread.RunAsync(() =>
        {
            if (Interlocked.Increment(ref running) > 1) Interlocked.Increment(ref overlaps);
            threads.Add(Environment.CurrentManagedThreadId);
            order.Add(i);
            Thread.SpinWait(1000);
            Interlocked.Decrement(ref running);
            return i;
        }))).ToList();
        Assert.Equal(Enumerable.Range(0, 50), (await Task.WhenAll(tasks)).Order());
        Assert.Equal(0, overlaps);
        Assert.Equal([torchThread.ManagedThreadId], threads);
        Assert.Equal(50, order.Count);

        var inOrder = Enumerable.Range(0, 20).Select(i => torchThread.RunAsync(() => i)).ToList();
        Assert.Equal(Enumerable.Range(0, 20), await Task.WhenAll(inOrder));
    }

    [Fact]
    public async Task Torch_work_runs_there_and_exceptions_reach_the_caller_without_stopping_the_thread()
    {
        using var torchThread = new TorchThread();
        float sum = await torchThread.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            return ones(3, 3).matmul(ones(3, 1)).sum().item<float>();
        });
        Assert.Equal(9f, sum);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => torchThread.RunAsync(() => throw new InvalidOperationException("bad shard")));
        Assert.Equal("bad shard", e.Message);
        Assert.Equal(1, await torchThread.RunAsync(() => 1)); // still serving after a failure
    }

    [Fact]
    public async Task Cancelled_and_late_work_is_refused_not_run()
    {
        var torchThread = new TorchThread();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        bool ran = false;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => torchThread.RunAsync(() => ran = true, cancelled.Token));
        Assert.False(ran);
        torchThread.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => torchThread.RunAsync(() => 1));
    }
}
