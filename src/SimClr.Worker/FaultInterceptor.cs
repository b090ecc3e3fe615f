using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace SimClr.Worker;

/// <summary>
/// An exception a handler did not expect is logged here with its stack, and the coordinator gets its message
/// (status Internal) instead of gRPC's bare "Exception was thrown by handler".
/// </summary>
public sealed class FaultInterceptor(ILogger<FaultInterceptor> log) : Interceptor
{
    private async Task<T> Guard<T>(ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            log.LogError(e, "{Method} failed", context.Method);
            Console.Error.WriteLine($"worker: {context.Method} failed: {e}");
            throw new RpcException(new Status(StatusCode.Internal, $"{context.Method} failed on the worker: {e.GetType().Name}: {e.Message}"));
        }
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        Guard(context, () => continuation(request, context));

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(context, () => continuation(requestStream, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(context, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(context, async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });
}
