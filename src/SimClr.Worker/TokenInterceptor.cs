using Grpc.Core;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>Refuses every Worker and Peer call without the run token (health checks stay open: they reveal nothing); the
/// connection of a call that passes is told to <see cref="ConnectionGuard"/>, which then never closes it to make room.</summary>
public sealed class TokenInterceptor(WorkerOptions options, ConnectionGuard connections) : AroundInterceptor
{
    protected override Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        if (!IsWorkerCall(context) && !IsPeerCall(context)) return call();
        if (options.Token is { } token && !RunToken.Matches(context.RequestHeaders.GetValue(RunToken.Header), token))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing or wrong run token (coordinator: --token-file or SIMCLR_TOKEN, the same as the worker's)"));
        connections.Authorised(context.GetHttpContext().Connection.Id);
        return call();
    }
}
