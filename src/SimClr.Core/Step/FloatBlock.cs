using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>
/// A float32 tensor of a step (projections, dL/dz) as it travels: bytes (what crossed, or will cross, a process
/// boundary) or a tensor on its device (what stays in this process). A block made on a device gives its bytes only when
/// a transport asks for them (<see cref="Data"/>: one device-to-host copy, counted by the owner's <see cref="HostSyncs"/>),
/// and a tensor to whoever takes it on a device (<see cref="ToTensor"/>: no host copy when it is there already).
/// A block on a device owns its tensor: dispose it when the step is done with it.
/// </summary>
public sealed class FloatBlock : IDisposable
{
    private readonly HostSyncs? _syncs;
    private Tensor? _tensor;
    private byte[]? _data;

    public FloatBlock(long[] shape, byte[] data)
    {
        Shape = shape;
        _data = data;
    }

    private FloatBlock(Tensor tensor, HostSyncs syncs)
    {
        Shape = tensor.shape;
        _tensor = tensor;
        _syncs = syncs;
    }

    /// <summary>A block of <paramref name="tensor"/> (float32; taken over: it leaves the caller's dispose scope), its bytes
    /// copied to the host only if a transport asks, counted on <paramref name="syncs"/>.</summary>
    public static FloatBlock OnDevice(Tensor tensor, HostSyncs syncs)
    {
        if (tensor.dtype != ScalarType.Float32) throw new ArgumentException($"a float block holds float32, not {tensor.dtype}", nameof(tensor));
        return new FloatBlock(tensor.contiguous().DetachFromDisposeScope(), syncs);
    }

    public long[] Shape { get; }

    /// <summary>The values as float32 bytes (for a transport): for a block on a device, one counted copy, made once (by
    /// <see cref="ToHost"/> on the torch thread, before a transport's thread asks).</summary>
    public byte[] Data => _data ??= _syncs!.Transport(_tensor!);

    /// <summary>Makes the host copy now (on the calling thread: the torch thread) and lets go of the device tensor.</summary>
    public FloatBlock ToHost()
    {
        _ = Data;
        Dispose();
        return this;
    }

    /// <summary>The values as a float32 tensor on <paramref name="device"/>, the caller's to dispose (a view of the block's own
    /// tensor when it is there already, without a copy).</summary>
    public Tensor ToTensor(Device device)
    {
        if (_tensor is { } t) return t.device == device ? t.alias() : t.to(device);
        if (_data is null) throw new ObjectDisposedException(nameof(FloatBlock));
        var host = empty(Shape, ScalarType.Float32);
        _data!.CopyTo(host.bytes);
        return device.type == TorchSharp.DeviceType.CPU ? host : host.to(device);
    }

    public void Dispose()
    {
        _tensor?.Dispose();
        _tensor = null;
    }
}
