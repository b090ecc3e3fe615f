using Grpc.Core;
using Grpc.Core.Interceptors;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>Refuses every Worker call without the run token (health checks stay open: they reveal nothing).</summary>
public sealed class TokenInterceptor(WorkerOptions options) : Interceptor
{
    private void Check(ServerCallContext context)
    {
        if (options.Token is not { } token || !context.Method.StartsWith("/simclr.v1.Worker/", StringComparison.Ordinal)) return;
        if (!RunToken.Matches(context.RequestHeaders.GetValue(RunToken.Header), token))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing or wrong run token (coordinator: --token-file or SIMCLR_TOKEN, the same as the worker's)"));
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }
}
