using Grpc.Core;

namespace SimClr.Worker;

/// <summary>
/// Worker calls run one at a time (a coordinator never needs more: its calls to a worker follow one another), so
/// however many calls a stray client opens, at most one message is being assembled. A call that cannot start within
/// <see cref="WorkerOptions.BusySeconds"/> is answered ResourceExhausted. Health checks are not gated.
/// </summary>
public sealed class CallGate(WorkerOptions options) : AroundInterceptor, IDisposable
{
    private readonly SemaphoreSlim _one = new(1, 1);

    protected override async Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        if (!IsWorkerCall(context)) return await call();
        bool entered;
        try
        {
            entered = await _one.WaitAsync(TimeSpan.FromSeconds(options.BusySeconds), context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled while waiting for the worker's previous call"));
        }
        if (!entered)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"the worker is busy: one Worker call runs at a time and another has run for over {options.BusySeconds:0.#} s"));
        try
        {
            return await call();
        }
        finally
        {
            _one.Release();
        }
    }

    public void Dispose() => _one.Dispose();
}
