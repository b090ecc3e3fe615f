using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Runtime;

/// <summary>
/// NCCL, the collective library of GPU trainers, through a thin binding to the libnccl.so.2 already on a GPU box (the
/// system's, from the libnccl2 package or the CUDA repository, or the one PyTorch's wheels install as
/// nvidia/nccl/lib/libnccl.so.2). Loaded by <see cref="Load"/> from a path that is given, else
/// <see cref="LibraryVariable"/>, else the loader's search path, else the Python environments' NCCL wheels. Only the calls
/// a data-parallel step needs: unique id, init, all-reduce (sum), abort, destroy, the errors.
/// Sums are float32 (or float64) in NCCL's order, fixed for a communicator: the same bits on every rank, but not the
/// ring's exactly rounded sum, so a redo over fewer ranks is not bit-identical to the undisturbed run
/// (docs/RELIABILITY.md).
/// </summary>
public sealed unsafe class Nccl : IDeviceCollective
{
    /// <summary>The environment variable that names the library's path (a worker's --nccl-library wins over it).</summary>
    public const string LibraryVariable = "SIMCLR_NCCL_LIBRARY";

    /// <summary>The library's file name on Linux.</summary>
    public const string LibraryName = "libnccl.so.2";

    /// <summary>ncclUniqueId's size (NCCL_UNIQUE_ID_BYTES).</summary>
    public const int UniqueIdBytes = 128;

    private const int NcclFloat32 = 7, NcclFloat64 = 8, NcclSum = 0, NcclInProgress = 7;

    [StructLayout(LayoutKind.Sequential, Size = UniqueIdBytes)]
    private struct UniqueId
    {
        public fixed byte Internal[UniqueIdBytes];
    }

    private readonly IntPtr _library;
    private readonly delegate* unmanaged<UniqueId*, int> _getUniqueId;
    private readonly delegate* unmanaged<IntPtr*, int, UniqueId, int, int> _commInitRank;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    private readonly delegate* unmanaged<IntPtr, int> _commAbort;
    private readonly delegate* unmanaged<IntPtr, int> _commDestroy;
    private readonly delegate* unmanaged<IntPtr, int*, int> _commGetAsyncError;
    private readonly delegate* unmanaged<int, IntPtr> _getErrorString;
    private readonly CudaDevice _cuda = new();

    private Nccl(IntPtr library, string path)
    {
        _library = library;
        Path = path;
        _getUniqueId = (delegate* unmanaged<UniqueId*, int>)Export("ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Export("ncclCommInitRank");
        _allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        _commAbort = (delegate* unmanaged<IntPtr, int>)Export("ncclCommAbort");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        _commGetAsyncError = (delegate* unmanaged<IntPtr, int*, int>)Export("ncclCommGetAsyncError");
        _getErrorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
        var getVersion = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
        int code;
        Check(getVersion(&code), "ncclGetVersion");
        Version = code >= 10000 ? new Version(code / 10000, code / 100 % 100, code % 100) : new Version(code / 1000, code / 100 % 10, code % 100);
    }

    /// <summary>Where the library was loaded from.</summary>
    public string Path { get; }

    public Version Version { get; }

    public string Description => $"NCCL {Version} ({Path})";

    /// <summary>Loads NCCL from <paramref name="path"/>, else <see cref="LibraryVariable"/>'s path, else wherever the loader
    /// or a Python environment's NCCL wheel has it. Throws <see cref="DeviceCollectiveUnavailableException"/> saying what
    /// to install or set.</summary>
    public static Nccl Load(string? path = null)
    {
        string? given = string.IsNullOrWhiteSpace(path) ? Environment.GetEnvironmentVariable(LibraryVariable) : path;
        if (!string.IsNullOrWhiteSpace(given))
        {
            if (!File.Exists(given))
                throw new DeviceCollectiveUnavailableException($"NCCL: {given} does not exist (given by {(string.IsNullOrWhiteSpace(path) ? LibraryVariable : "--nccl-library")}). {Remedy}");
            return Open(given);
        }
        foreach (string candidate in Candidates())
        {
            if (NativeLibrary.TryLoad(candidate, out var handle)) return Bind(handle, candidate);
        }
        throw new DeviceCollectiveUnavailableException(
            $"NCCL: {LibraryName} was not found on the loader's path (LD_LIBRARY_PATH, ldconfig) nor in a Python environment's nvidia-nccl wheel. {Remedy}");
    }

    /// <summary>What to do when NCCL does not load.</summary>
    public const string Remedy = "Install NCCL (Debian/Ubuntu with NVIDIA's CUDA repository: apt-get install libnccl2; or pip install nvidia-nccl-cu12), "
        + "or set " + LibraryVariable + " (or simclr worker --nccl-library) to the path of " + LibraryName + "; else use reduction.method ring or auto";

    private static Nccl Open(string path)
    {
        IntPtr handle;
        try
        {
            handle = NativeLibrary.Load(path);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            throw new DeviceCollectiveUnavailableException($"NCCL: {path} does not load: {e.Message.Split('\n')[0]}. {Remedy}", e);
        }
        return Bind(handle, path);
    }

    /// <summary>The NCCL of a loaded library, or, when it lacks NCCL's calls, the library let go and the reason.</summary>
    private static Nccl Bind(IntPtr handle, string shown)
    {
        try
        {
            return new Nccl(handle, shown);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DeviceCollectiveException)
        {
            NativeLibrary.Free(handle);
            throw new DeviceCollectiveUnavailableException($"NCCL: {shown} is not a usable NCCL 2 library: {e.Message}. {Remedy}", e);
        }
    }

    /// <summary>The library's name for the loader's search path (LD_LIBRARY_PATH, ldconfig's cache), then the NCCL wheels of
    /// the active and the system's Python environments.</summary>
    private static IEnumerable<string> Candidates()
    {
        yield return LibraryName;
        var roots = new List<string>();
        foreach (string variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } prefix) roots.Add(System.IO.Path.Combine(prefix, "lib"));
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        roots.AddRange([System.IO.Path.Combine(home, ".local", "lib"), "/usr/local/lib", "/usr/lib", "/opt/conda/lib"]);
        foreach (string root in roots.Where(Directory.Exists))
        {
            IEnumerable<string> pythons;
            try
            {
                pythons = Directory.EnumerateDirectories(root, "python3*").Order(StringComparer.Ordinal).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            var files = pythons.SelectMany(python => new[] { "site-packages", "dist-packages" }
                .Select(packages => System.IO.Path.Combine(python, packages, "nvidia", "nccl", "lib", LibraryName)));
            foreach (string file in files.Where(File.Exists)) yield return file;
        }
    }

    private IntPtr Export(string name) => NativeLibrary.TryGetExport(_library, name, out var address)
        ? address
        : throw new EntryPointNotFoundException($"{Path} has no {name}");

    public string? Problem(Device device) =>
        device.type == DeviceType.CUDA ? null : $"it runs on {device}, and NCCL sums between CUDA devices only";

    public byte[] NewUniqueId()
    {
        UniqueId id;
        Check(_getUniqueId(&id), "ncclGetUniqueId");
        return new ReadOnlySpan<byte>(id.Internal, UniqueIdBytes).ToArray();
    }

    public IDeviceCommunicator Join(byte[] uniqueId, int ranks, int rank, Device device)
    {
        if (uniqueId.Length != UniqueIdBytes) throw new ArgumentException($"an NCCL unique id has {UniqueIdBytes} bytes, not {uniqueId.Length}", nameof(uniqueId));
        if (Problem(device) is { } problem) throw new DeviceCollectiveUnavailableException($"NCCL: {problem}");
        _cuda.Use(device); // NCCL binds the communicator to the calling thread's current CUDA device
        UniqueId id;
        uniqueId.CopyTo(new Span<byte>(id.Internal, UniqueIdBytes));
        IntPtr comm;
        Check(_commInitRank(&comm, ranks, id, rank), $"ncclCommInitRank (rank {rank} of {ranks})");
        return new Communicator(this, comm, rank, ranks);
    }

    private void Check(int result, string call)
    {
        if (result == 0) return;
        string text = _getErrorString is null ? "" : Marshal.PtrToStringUTF8(_getErrorString(result)) ?? "";
        throw new DeviceCollectiveException($"{call} failed: NCCL error {result} ({text})");
    }

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);

    /// <summary>Where <paramref name="tensor"/>'s first value is, in its device's memory (libtorch's data_ptr, which
    /// TorchSharp does not expose): what NCCL reads and writes.</summary>
    internal static IntPtr DataPointer(Tensor tensor) => THSTensor_data(tensor.Handle);

    /// <summary>One rank of an NCCL communicator.</summary>
    private sealed class Communicator(Nccl nccl, IntPtr comm, int rank, int ranks) : IDeviceCommunicator
    {
        private readonly Lock _gate = new();
        private IntPtr _comm = comm;
        private bool _aborted;

        public int Rank { get; } = rank;

        public int Ranks { get; } = ranks;

        public bool Aborted
        {
            get
            {
                lock (_gate) return _aborted;
            }
        }

        public void AllReduceSum(Tensor buffer)
        {
            int type = buffer.dtype switch
            {
                ScalarType.Float32 => NcclFloat32,
                ScalarType.Float64 => NcclFloat64,
                _ => throw new ArgumentException($"NCCL sums float32 or float64 here, not {buffer.dtype}", nameof(buffer)),
            };
            if (!buffer.is_contiguous()) throw new ArgumentException("the buffer NCCL sums must be contiguous", nameof(buffer));
            IntPtr handle;
            lock (_gate)
            {
                if (_aborted) throw new DeviceCollectiveException("the NCCL communicator was aborted");
                handle = _comm;
            }
            IntPtr data = DataPointer(buffer);
            // stream 0: the legacy default stream, the one libtorch computes on unless a stream is set (TorchSharp sets none),
            // so the sum runs after the kernels that wrote the bucket and before those that read it
            nccl.Check(nccl._allReduce(data, data, (nuint)buffer.numel(), type, NcclSum, handle, IntPtr.Zero), $"ncclAllReduce ({buffer.numel()} values)");
            int state;
            nccl.Check(nccl._commGetAsyncError(handle, &state), "ncclCommGetAsyncError");
            if (state != 0 && state != NcclInProgress) nccl.Check(state, "the NCCL communicator");
        }

        public void Abort()
        {
            IntPtr handle;
            lock (_gate)
            {
                if (_aborted || _comm == IntPtr.Zero) return;
                _aborted = true;
                handle = _comm;
                _comm = IntPtr.Zero;
            }
            nccl._commAbort(handle); // frees the communicator and makes its pending kernels return
        }

        public void Dispose()
        {
            IntPtr handle;
            lock (_gate)
            {
                handle = _comm;
                _comm = IntPtr.Zero;
            }
            if (handle != IntPtr.Zero) nccl._commDestroy(handle);
        }
    }

    /// <summary>cudaSetDevice, for NCCL's init: from the CUDA runtime next to libtorch or on the loader's path. Device 0
    /// (the usual case: one visible GPU a worker) needs nothing, as it is every thread's current device to begin with.</summary>
    private sealed class CudaDevice
    {
        private delegate* unmanaged<int, int> _setDevice;

        public void Use(Device device)
        {
            int index = device.index < 0 ? 0 : device.index;
            if (index == 0) return;
            if (_setDevice is null)
            {
                var runtime = RuntimeCandidates().Select(c => NativeLibrary.TryLoad(c, out var h) ? h : IntPtr.Zero).FirstOrDefault(h => h != IntPtr.Zero);
                if (runtime == IntPtr.Zero || !NativeLibrary.TryGetExport(runtime, "cudaSetDevice", out var export))
                    throw new DeviceCollectiveUnavailableException($"NCCL on {device}: the CUDA runtime (libcudart.so) was not found to select the device; "
                        + "give each worker its GPU as cuda:0 (CUDA_VISIBLE_DEVICES=N), or put libcudart.so on LD_LIBRARY_PATH");
                _setDevice = (delegate* unmanaged<int, int>)export;
            }
            int result = _setDevice(index);
            if (result != 0) throw new DeviceCollectiveException($"cudaSetDevice({index}) failed: CUDA error {result}");
        }

        private static IEnumerable<string> RuntimeCandidates()
        {
            string native = System.IO.Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
            foreach (string folder in new[] { AppContext.BaseDirectory, native, System.IO.Path.Combine(native, "runtimes", "linux-x64", "native") }.Distinct())
            {
                if (!Directory.Exists(folder)) continue;
                foreach (string file in Directory.EnumerateFiles(folder, "libcudart*.so*").Order(StringComparer.Ordinal)) yield return file;
            }
            yield return "libcudart.so";
            yield return "libcudart.so.12";
            yield return "libcudart.so.11.0";
        }
    }
}
