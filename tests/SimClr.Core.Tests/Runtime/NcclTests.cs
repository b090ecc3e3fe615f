using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Runtime;

/// <summary>NCCL's binding where NCCL cannot load: one message that says what to install or set (issue 19).</summary>
public sealed class NcclTests
{
    [Fact]
    public void The_pointer_NCCL_is_given_is_the_tensors_memory()
    {
        using var t = zeros([4, 3], ScalarType.Float32);
        using var view = t.narrow(0, 1, 2); // starts 3 values in
        IntPtr first = Nccl.DataPointer(t), viewed = Nccl.DataPointer(view);
        Assert.Equal(3 * sizeof(float), viewed - first);
        System.Runtime.InteropServices.Marshal.Copy(new[] { 7f }, 0, viewed, 1);
        System.Runtime.InteropServices.Marshal.Copy(new[] { 5f }, 0, first + (11 * sizeof(float)), 1);
        Assert.Equal(7f, t[1, 0].ToSingle());
        Assert.Equal(5f, t[3, 2].ToSingle());
    }

    [Fact]
    public void A_path_that_does_not_exist_is_named_with_what_to_install_or_set()
    {
        var e = Assert.Throws<DeviceCollectiveUnavailableException>(() => Nccl.Load("/nowhere/libnccl.so.2"));
        Assert.StartsWith("NCCL: /nowhere/libnccl.so.2 does not exist (given by --nccl-library). ", e.Message);
        Assert.EndsWith(Nccl.Remedy, e.Message);
        Assert.Contains("apt-get install libnccl2", Nccl.Remedy);
        Assert.Contains("pip install nvidia-nccl-cu12", Nccl.Remedy);
        Assert.Contains(Nccl.LibraryVariable, Nccl.Remedy);
    }

    [Fact]
    public void A_file_that_is_not_a_library_is_refused_as_such()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("simclr-nccl-").FullName, "libnccl.so.2");
        File.WriteAllText(path, "not an ELF file");
        try
        {
            var e = Assert.Throws<DeviceCollectiveUnavailableException>(() => Nccl.Load(path));
            Assert.StartsWith($"NCCL: {path} does not load: ", e.Message);
            Assert.EndsWith(Nccl.Remedy, e.Message);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void A_library_without_NCCLs_calls_is_refused_naming_the_missing_one()
    {
        // libc loads, but it is not NCCL
        string libc = new[] { "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6" }.First(File.Exists);
        var e = Assert.Throws<DeviceCollectiveUnavailableException>(() => Nccl.Load(libc));
        Assert.Contains($"{libc} is not a usable NCCL 2 library", e.Message);
        Assert.Contains("has no ncclGetUniqueId", e.Message);
    }
}
