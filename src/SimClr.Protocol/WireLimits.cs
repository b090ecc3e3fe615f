namespace SimClr.Protocol;

/// <summary>Sizes fixed by the contract, set explicitly on both sides so a stray client cannot exhaust memory.</summary>
public static class WireLimits
{
    /// <summary>Longest unique id of a device communicator either side accepts (NCCL's are 128 bytes).</summary>
    public const int MaxCommunicatorIdBytes = 4096;

    /// <summary>Largest data payload of one TensorChunk.</summary>
    public const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>Largest gRPC message either side accepts: a chunk plus its header, with room to spare.</summary>
    public const int MaxMessageBytes = ChunkBytes + 64 * 1024;

    /// <summary>Largest tensor accepted in one stream (a 4096-image shard of 32x32 RGB views in float32 is 100 MB): the
    /// most one .NET array holds (<see cref="Array.MaxLength"/>, just under 2 GiB), so a larger declared size is refused
    /// before any allocation instead of failing it.</summary>
    public const long MaxTensorBytes = 0x7FFFFFC7;

    public const int MaxDimensions = 8;

    /// <summary>Connections without an authorised call a worker keeps at once (health checks, strangers, connections before
    /// their first call); a new one beyond closes the oldest. A coordinator's connection, once its token passed, is not counted.</summary>
    public const int MaxConnections = 16;

    /// <summary>HTTP/2 flow-control window, per stream and per connection, both sides (16 MiB, the .NET client's largest): about 4 tensor chunks in flight.</summary>
    public const int WindowBytes = 16 * 1024 * 1024;
}
