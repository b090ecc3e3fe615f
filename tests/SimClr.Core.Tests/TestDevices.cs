using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests;

/// <summary>
/// The devices the computing tests run on: "cpu", plus "cuda" when torch sees a GPU (a build with
/// -p:TorchSharpPackage=TorchSharp-cuda-linux on a machine with one). SIMCLR_TEST_DEVICES=cpu,cuda (comma separated)
/// forces the list, so a GPU box whose detection fails gets failing cuda tests instead of a silent CPU-only run.
/// Each device is its own theory row, named `(device: "cuda", ...)`: on a GPU box
/// <c>SIMCLR_TEST_DEVICES=cuda dotnet test tests/SimClr.Core.Tests -c Release -p:TorchSharpPackage=TorchSharp-cuda-linux --filter "DisplayName~cuda"</c>
/// runs them all on the GPU (bench/gpu.sh does).
/// Where the CPU tests compare bits (two runs of the same maths), the cuda rows compare within <see cref="Tolerance"/>:
/// cuDNN's backward kernels sum with atomics in no fixed order, so equal bits are a CPU property. TF32 is off on cuda
/// (<see cref="Get"/>) so that float32 references hold to the CPU's tolerances.
/// </summary>
public static class TestDevices
{
    /// <summary>The variable that forces the device list.</summary>
    public const string Variable = "SIMCLR_TEST_DEVICES";

    /// <summary>The device names, in order: the variable's, else cpu and (when available) cuda.</summary>
    public static IReadOnlyList<string> Names()
    {
        string? forced = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(forced))
            return forced.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return cuda.is_available() ? ["cpu", "cuda"] : ["cpu"];
    }

    /// <summary>Theory rows: one per device.</summary>
    public static TheoryData<string> All
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (string name in Names()) data.Add(name);
            return data;
        }
    }

    /// <summary>The device of a row; fails loudly when it is cuda and torch sees none (a forced list on the wrong build or machine).</summary>
    public static Device Get(string name)
    {
        var device = new Device(name);
        if (device.type != DeviceType.CUDA) return device;
        if (!cuda.is_available())
            throw new InvalidOperationException($"{Variable} lists '{name}' but torch.cuda.is_available() is false: build the tests with "
                + "-p:TorchSharpPackage=TorchSharp-cuda-linux on a machine with a CUDA GPU");
        backends.cuda.matmul.allow_tf32 = false;
        backends.cudnn.allow_tf32 = false;
        return device;
    }

    /// <summary>Whether a row's results can be held to equal bits (the CPU's deterministic kernels).</summary>
    public static bool Exact(string name) => new Device(name).type == DeviceType.CPU;

    /// <summary>The relative tolerance of a cuda row where the CPU's compares bits: float32 sums in another order.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>a and b equal in bits on the CPU, within <see cref="Tolerance"/> of b's largest magnitude on cuda.</summary>
    public static void AssertSame(string device, Tensor a, Tensor b, string what)
    {
        using var scope = NewDisposeScope();
        var x = a.detach().cpu();
        var y = b.detach().cpu();
        Assert.Equal(y.shape, x.shape);
        if (Exact(device))
        {
            Assert.True(x.contiguous().bytes.SequenceEqual(y.contiguous().bytes), $"{what}: the bits differ");
            return;
        }
        double scale = Math.Max(1e-12, y.to_type(ScalarType.Float64).abs().max().item<double>());
        double diff = x.to_type(ScalarType.Float64).sub(y.to_type(ScalarType.Float64)).abs().max().item<double>();
        Assert.True(diff <= Tolerance * scale, $"{what}: differs by {diff:G3} on {device} (scale {scale:G3}, tolerance {Tolerance} of it)");
    }
}
