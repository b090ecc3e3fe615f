using Grpc.Core;
using Grpc.Core.Interceptors;

namespace SimClr.Worker;

/// <summary>
/// A Worker call that streams its request must deliver each message within <see cref="WorkerOptions.MessageSeconds"/>
/// of the one before (the first: of the call's start), or it is ended with DeadlineExceeded and frees the call slot
/// (<see cref="CallGate"/>). A coordinator sends a call's messages back to back, so only a stalled or hostile client
/// waits that long; without this, a stream that sent its headers and nothing else held the worker for good.
/// </summary>
public sealed class ReadDeadline(WorkerOptions options) : Interceptor
{
    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        continuation(Timed(requestStream, context), context);

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        continuation(Timed(requestStream, context), responseStream, context);

    private IAsyncStreamReader<T> Timed<T>(IAsyncStreamReader<T> stream, ServerCallContext context) =>
        context.Method.StartsWith("/simclr.v1.Worker/", StringComparison.Ordinal) ? new Reader<T>(stream, TimeSpan.FromSeconds(options.MessageSeconds), context) : stream;

    private sealed class Reader<T>(IAsyncStreamReader<T> inner, TimeSpan limit, ServerCallContext context) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken);
            timer.CancelAfter(limit);
            try
            {
                return await inner.MoveNext(timer.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or RpcException && timer.IsCancellationRequested
                && !cancellationToken.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
            {
                throw new RpcException(new Status(StatusCode.DeadlineExceeded,
                    $"{context.Method}: no message for {limit.TotalSeconds:0.#} s; the call is ended (a worker serves one call at a time)"));
            }
        }
    }
}
