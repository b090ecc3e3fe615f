using Grpc.Core;
using Grpc.Core.Interceptors;

namespace SimClr.Worker;

/// <summary>
/// An interceptor that runs the same code around every kind of handler (unary, client, server and duplex streaming):
/// subclasses write <see cref="AroundAsync"/> once instead of four overrides each.
/// </summary>
public abstract class AroundInterceptor : Interceptor
{
    /// <summary>Runs <paramref name="call"/> (the handler) for <paramref name="context"/>'s method.</summary>
    protected abstract Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call);

    /// <summary>A call of the Worker service (not grpc.health.v1, which stays open and ungated).</summary>
    protected static bool IsWorkerCall(ServerCallContext context) => context.Method.StartsWith("/simclr.v1.Worker/", StringComparison.Ordinal);

    /// <summary>A call of the Peer service (another worker's ring pieces): token-checked, but not serialised with Worker calls.</summary>
    protected static bool IsPeerCall(ServerCallContext context) => context.Method.StartsWith("/simclr.v1.Peer/", StringComparison.Ordinal);

    public sealed override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => continuation(request, context));

    public sealed override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, () => continuation(requestStream, context));

    public sealed override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    public sealed override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        AroundAsync(context, async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });
}
