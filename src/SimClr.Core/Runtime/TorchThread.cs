using System.Threading.Channels;

namespace SimClr.Core.Runtime;

/// <summary>
/// The one thread of a process that does torch work. TorchSharp's dispose scopes are thread-static and libtorch
/// state (threads, seeds) is per process, so a worker's gRPC handlers hand their work here and await the result:
/// work items run one at a time, in order of submission, always on the same thread.
/// </summary>
public sealed class TorchThread : IDisposable
{
    private readonly Channel<Action> _queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _thread;

    public TorchThread(string name = "torch")
    {
        _thread = new Thread(Loop) { Name = name, IsBackground = true };
        _thread.Start();
    }

    public int ManagedThreadId => _thread.ManagedThreadId;

    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancel = default)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Run()
        {
            if (cancel.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancel);
                return;
            }
            try
            {
                completion.TrySetResult(work());
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
            }
        }
        if (!_queue.Writer.TryWrite(Run)) completion.TrySetException(new ObjectDisposedException(nameof(TorchThread), "the torch thread has stopped"));
        return completion.Task;
    }

    public Task RunAsync(Action work, CancellationToken cancel = default) => RunAsync(() =>
    {
        work();
        return true;
    }, cancel);

    private void Loop()
    {
        var reader = _queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out var item)) item();
        }
    }

    /// <summary>Stops taking work, finishes what was queued, and joins the thread.</summary>
    public void Dispose()
    {
        _queue.Writer.TryComplete();
        if (Thread.CurrentThread != _thread) _thread.Join();
    }
}
