using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace SimClr.Worker;

/// <summary>
/// An exception a handler did not expect is logged here with its stack, and the coordinator gets its message
/// (status Internal) instead of gRPC's bare "Exception was thrown by handler". Memory the worker could not get for a
/// call (a client's declared size, or the machine's limit) is the client's to fix: ResourceExhausted, in one line.
/// </summary>
public sealed class FaultInterceptor(ILogger<FaultInterceptor> log) : AroundInterceptor
{
    protected override async Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (OutOfMemoryException e)
        {
            log.LogWarning("{Method} refused: out of memory: {Reason}", context.Method, e.Message);
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"{context.Method}: the worker could not allocate memory for this call: {e.Message}"));
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            log.LogError(e, "{Method} failed", context.Method); // with its stack: a fault of the worker's, not the client's
            throw new RpcException(new Status(StatusCode.Internal, $"{context.Method} failed on the worker: {e.GetType().Name}: {e.Message}"));
        }
    }
}
