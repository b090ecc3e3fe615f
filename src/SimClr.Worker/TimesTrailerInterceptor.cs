using Grpc.Core;
using SimClr.Core.Replica;
using SimClr.Protocol;
using SimClr.Wire;

namespace SimClr.Worker;

/// <summary>
/// Answers a Worker call with the replica's own times in it (<see cref="StepTimesTrailer"/>), beside the data path:
/// the handler leaves the times its session returned on the call (<see cref="Report"/>), and once the handler has
/// succeeded this writes them as the call's trailer. A call that failed, or reported none, has no trailer.
/// </summary>
public sealed class TimesTrailerInterceptor : AroundInterceptor
{
    private static readonly object Key = typeof(TimesTrailerInterceptor);

    /// <summary>What the replica spent on its own work in <paramref name="context"/>'s call, for its trailer.</summary>
    public static void Report(ServerCallContext context, ReplicaTimes times) => context.UserState[Key] = times;

    protected override async Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> call)
    {
        var result = await call();
        if (IsWorkerCall(context) && context.UserState.TryGetValue(Key, out object? times))
            WireMapping.AddTimes(context.ResponseTrailers, (ReplicaTimes)times);
        return result;
    }
}
