using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Runtime;

/// <summary>
/// Every point where a step waits for its device and reads from it, counted: a scalar or small read the host needs to
/// decide something (the loss, a non-finite flag, a fingerprint), a copy of a tensor's bytes for a transport (gRPC:
/// projections, dL/dz, a gradient bucket) and a synchronisation for a phase timer (CUDA only). On CUDA each of these
/// stalls the device; code on the step's path reads through here and nowhere else, so <c>host_syncs</c> in metrics.jsonl
/// says what a step costs a GPU, and tests pin it. Counted the same on the CPU, where these are plain reads. One per
/// replica and one for the coordinator's half of the step; used on the torch thread only. Copies from a CUDA device land
/// in pinned host buffers kept for the next copy of the same size (a step's buckets and blocks keep their sizes), so a
/// copy allocates nothing; dispose it to let them go.
/// </summary>
public sealed class HostSyncs : IDisposable
{
    private readonly Dictionary<(ScalarType, long), Tensor> _pinned = [];
    private long _reads, _transport, _timer;

    /// <summary>A 0-dim tensor's value: one read.</summary>
    public double Scalar(Tensor value)
    {
        _reads++;
        return value.ToDouble();
    }

    /// <summary>A small tensor's values as float64 (stacked flags, a fingerprint): one read.</summary>
    public double[] Values(Tensor values)
    {
        _reads++;
        using var scope = NewDisposeScope();
        return values.to_type(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
    }

    /// <summary>A tensor's bytes for the host's own use (the full checksum): one read, however large.</summary>
    public byte[] Copy(Tensor tensor)
    {
        _reads++;
        return HostBytes(tensor);
    }

    /// <summary>A tensor's bytes for a transport, in one device-to-host copy.</summary>
    public byte[] Transport(Tensor tensor)
    {
        _transport++;
        return HostBytes(tensor);
    }

    /// <summary>The tensor's bytes: read where it is on the CPU; from a device, copied into a pinned buffer of its size
    /// (made at the first copy of that size, reused after), where device-to-host copies are fastest.</summary>
    private byte[] HostBytes(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var contiguous = tensor.contiguous();
        if (contiguous.device_type == TorchSharp.DeviceType.CPU) return contiguous.bytes.ToArray();
        var key = (contiguous.dtype, contiguous.numel());
        if (!_pinned.TryGetValue(key, out var host))
            _pinned[key] = host = empty([key.Item2], key.Item1, CPU).pin_memory().DetachFromDisposeScope();
        host.copy_(contiguous.reshape(-1));
        return host.bytes.ToArray();
    }

    /// <summary>Waits for <paramref name="device"/>'s queued work (a phase timer's mark on CUDA); a no-op elsewhere.</summary>
    public void Synchronize(Device device)
    {
        if (device.type != TorchSharp.DeviceType.CUDA) return;
        _timer++;
        cuda.synchronize(device);
    }

    /// <summary>The counts since the last call; the counters restart.</summary>
    public SyncCounts Take()
    {
        var counts = new SyncCounts(_reads, _transport, _timer);
        _reads = _transport = _timer = 0;
        return counts;
    }

    public void Dispose()
    {
        foreach (var buffer in _pinned.Values) buffer.Dispose();
        _pinned.Clear();
    }
}
