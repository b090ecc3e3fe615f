using static TorchSharp.torch;

namespace SimClr.Core.Runtime;

/// <summary>
/// A collective library that sums tensors between the devices of several processes where they are, without the host
/// (NCCL between GPUs: <see cref="Nccl"/>). A communicator is made from a unique id that one process makes and all others
/// are given (<see cref="NewUniqueId"/>, then <see cref="Join"/> on every rank at once). The step reaches it through
/// ReplicaSession.BackwardReduceOnDevice; tests give workers an in-process stand-in.
/// </summary>
public interface IDeviceCollective
{
    /// <summary>The library and its version, as logs and errors name it ("NCCL 2.21.5 (/usr/lib/x86_64-linux-gnu/libnccl.so.2)").</summary>
    string Description { get; }

    /// <summary>Why a replica on <paramref name="device"/> cannot use this library (NCCL: a device that is not CUDA), or null.</summary>
    string? Problem(Device device);

    /// <summary>A fresh unique id for a new communicator (NCCL: ncclGetUniqueId, 128 bytes).</summary>
    byte[] NewUniqueId();

    /// <summary>This process's rank in the communicator of <paramref name="uniqueId"/> over <paramref name="ranks"/> processes;
    /// blocks until every rank has joined (NCCL: ncclCommInitRank). Throws <see cref="DeviceCollectiveException"/>.</summary>
    IDeviceCommunicator Join(byte[] uniqueId, int ranks, int rank, Device device);
}

/// <summary>One rank of a communicator (<see cref="IDeviceCollective.Join"/>): used on the torch thread, except
/// <see cref="Abort"/>, which any thread may call to end what the torch thread waits for.</summary>
public interface IDeviceCommunicator : IDisposable
{
    int Rank { get; }

    int Ranks { get; }

    /// <summary>Replaces <paramref name="buffer"/> (contiguous float32 or float64 on the communicator's device) with its sum over
    /// all ranks, in place, queued on the stream torch computes on (so it runs after what wrote the buffer and before what
    /// reads it). Every rank calls it with buffers of the same size in the same order. Throws
    /// <see cref="DeviceCollectiveException"/> when the communicator failed or was aborted.</summary>
    void AllReduceSum(Tensor buffer);

    /// <summary>Ends the communicator now, from any thread: calls waiting in it (here or on the device) fail instead of
    /// waiting for a rank that will not come (NCCL: ncclCommAbort). The communicator cannot be used after.</summary>
    void Abort();

    /// <summary>Whether <see cref="Abort"/> was called or the communicator failed.</summary>
    bool Aborted { get; }
}

/// <summary>The collective library failed (a peer gone, the communicator aborted, an error it reported).</summary>
public sealed class DeviceCollectiveException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The collective library cannot be used in this process; the message says what to install or set.</summary>
public sealed class DeviceCollectiveUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
