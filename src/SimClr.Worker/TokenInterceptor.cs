using Grpc.Core;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>Refuses every Worker and Peer call without the run token (health checks stay open: they reveal nothing).</summary>
public sealed class TokenInterceptor(WorkerOptions options) : AroundInterceptor
{
    protected override Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        if (options.Token is { } token && (IsWorkerCall(context) || IsPeerCall(context)) && !RunToken.Matches(context.RequestHeaders.GetValue(RunToken.Header), token))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing or wrong run token (coordinator: --token-file or SIMCLR_TOKEN, the same as the worker's)"));
        return call();
    }
}
