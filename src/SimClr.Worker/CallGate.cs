using Grpc.Core;
using Grpc.Core.Interceptors;

namespace SimClr.Worker;

/// <summary>
/// Worker calls run one at a time (a coordinator never needs more: its calls to a worker follow one another), so
/// however many calls a stray client opens, at most one message is being assembled. A call that cannot start within
/// <see cref="WorkerOptions.BusySeconds"/> is answered ResourceExhausted. Health checks are not gated.
/// </summary>
public sealed class CallGate(WorkerOptions options) : Interceptor, IDisposable
{
    private readonly SemaphoreSlim _one = new(1, 1);

    private async Task<IDisposable?> EnterAsync(ServerCallContext context)
    {
        if (!context.Method.StartsWith("/simclr.v1.Worker/", StringComparison.Ordinal)) return null;
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
        return new Release(_one);
    }

    private sealed class Release(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        using var entered = await EnterAsync(context);
        return await continuation(request, context);
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var entered = await EnterAsync(context);
        return await continuation(requestStream, context);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var entered = await EnterAsync(context);
        await continuation(request, responseStream, context);
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var entered = await EnterAsync(context);
        await continuation(requestStream, responseStream, context);
    }

    public void Dispose() => _one.Dispose();
}
