using Microsoft.Extensions.Logging;
using SimClr.Core.Collectives;
using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Worker;

/// <summary>
/// This worker's side of the devices' collective (NCCL, <see cref="Nccl"/>; in tests <see cref="WorkerOptions.DeviceCollective"/>):
/// the library, loaded once when first asked for (or why it cannot be), and the one communicator the worker is a rank
/// of. A BackwardReduce that names another communicator (a new id after a loss, a rejoin or a failure) aborts the current
/// one and joins the new; the coordinator cancelling a call aborts it too (<see cref="Abort"/>), so that the torch thread
/// never waits for a rank that is gone. Aborting, never destroying: ncclCommAbort does not wait for the other ranks.
/// </summary>
public sealed class DeviceCommunicators(WorkerOptions options, ILogger<DeviceCommunicators> log) : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Lazy<(IDeviceCollective? Library, string? Problem)> _library = new(() => Load(options, log));
    private IDeviceCommunicator? _current;
    private CommunicatorPlan? _currentPlan; // what _current was joined for

    private static (IDeviceCollective?, string?) Load(WorkerOptions options, ILogger log)
    {
        if (options.DeviceCollective is { } given) return (given, null);
        try
        {
            var nccl = Nccl.Load(options.NcclLibrary);
            log.LogInformation("device collective: {Library}", nccl.Description);
            return (nccl, null);
        }
        catch (DeviceCollectiveUnavailableException e)
        {
            return (null, e.Message);
        }
    }

    /// <summary>The library a replica on <paramref name="device"/> can sum over, or null and why not.</summary>
    public (string? Description, string Problem) Support(Device device)
    {
        var (library, problem) = _library.Value;
        if (library is null) return (null, problem!);
        if (library.Problem(device) is { } onDevice) return (null, onDevice);
        return (library.Description, "");
    }

    /// <summary>A fresh unique id (this worker is to be rank 0). Throws <see cref="DeviceCollectiveUnavailableException"/>.</summary>
    public byte[] NewId(Device device)
    {
        var (description, problem) = Support(device);
        if (description is null) throw new DeviceCollectiveUnavailableException(problem);
        return _library.Value.Library!.NewUniqueId();
    }

    /// <summary>The communicator of <paramref name="plan"/> with this worker as <paramref name="rank"/>: the current one when
    /// it is the same, else a new one (the old aborted); a <see cref="DeviceCollectiveException"/> when the current one has
    /// this id but was aborted (an id is joined once). Blocks until every rank has joined, or <paramref name="cancel"/>
    /// (a rank that never comes: the coordinator cancels the call). On the torch thread.</summary>
    public IDeviceCommunicator Use(CommunicatorPlan plan, int rank, Device device, CancellationToken cancel)
    {
        var (description, problem) = Support(device);
        if (description is null) throw new DeviceCollectiveUnavailableException(problem);
        lock (_gate)
        {
            if (_current is { } current && _currentPlan is not null && _currentPlan.UniqueId.AsSpan().SequenceEqual(plan.UniqueId))
            {
                if (current.Aborted) // an id makes one communicator: the coordinator's next attempt brings a new one
                    throw new DeviceCollectiveException($"communicator {plan.Short} was aborted here; it cannot be joined again");
                if (current.Rank == rank && current.Ranks == plan.Ranks) return current;
            }
            DropCurrent();
        }
        log.LogInformation("joining communicator {Id} as rank {Rank} of {Ranks}", plan.Short, rank, plan.Ranks);
        var joined = Join(_library.Value.Library!, plan, rank, device, cancel);
        lock (_gate)
        {
            _current = joined;
            _currentPlan = plan;
        }
        return joined;
    }

    /// <summary>Joins on a thread of its own, so that the caller can stop waiting: a communicator that does not exist yet
    /// cannot be aborted (ncclCommInitRank blocks until every rank has come), so a join the caller gave up on is left to
    /// end by itself, and aborted if it ever completes.</summary>
    private static IDeviceCommunicator Join(IDeviceCollective library, CommunicatorPlan plan, int rank, Device device, CancellationToken cancel)
    {
        var joining = Task.Factory.StartNew(() => library.Join(plan.UniqueId, plan.Ranks, rank, device), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            joining.Wait(cancel);
            return joining.Result;
        }
        catch (OperationCanceledException)
        {
            _ = joining.ContinueWith(t =>
            {
                if (!t.IsCompletedSuccessfully) return;
                t.Result.Abort();
                t.Result.Dispose();
            }, TaskScheduler.Default);
            throw new DeviceCollectiveException($"stopped waiting for the other ranks to join communicator {plan.Short}: the call was cancelled");
        }
        catch (AggregateException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    /// <summary>Aborts the current communicator (any thread): what waits in it fails now.</summary>
    public void Abort()
    {
        IDeviceCommunicator? current;
        CommunicatorPlan? plan;
        lock (_gate) (current, plan) = (_current, _currentPlan);
        if (current is { Aborted: false })
        {
            log.LogWarning("aborting communicator {Id}", plan?.Short ?? "?");
            current.Abort();
        }
    }

    /// <summary>Aborts and forgets the current communicator; under the gate.</summary>
    private void DropCurrent()
    {
        _current?.Abort();
        _current?.Dispose();
        _current = null;
        _currentPlan = null;
    }

    public void Dispose()
    {
        lock (_gate) DropCurrent();
    }
}
