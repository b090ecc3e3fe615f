using System.Diagnostics;

namespace SimClr.Distributed.Tests;

/// <summary>
/// `simclr` with one of TorchSharp's native libraries missing or broken (a copy of the built program, hard-linked, with
/// the file removed or emptied; no NuGet cache for TorchSharp to fall back on). It used to end in TorchSharp's page about
/// NuGet packages and Python installs with a stack trace, or in "ArgumentNullException (paths)".
/// </summary>
public sealed class NativeLibraryTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-native-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("missing")]
    [InlineData("empty")]
    public void A_missing_or_broken_native_library_is_named_with_what_to_do(string damage)
    {
        string app = Path.Combine(_folder, "app");
        using (var copy = Process.Start("cp", ["-al", AppContext.BaseDirectory.TrimEnd('/'), app])!)
        {
            copy.WaitForExit();
            Assert.Equal(0, copy.ExitCode);
        }
        string native = Path.Combine(app, "runtimes", "linux-x64", "native");
        string shim = Path.Combine(native, "libLibTorchSharp.so");
        File.Delete(shim); // the copy's link only
        if (damage == "empty") File.WriteAllBytes(shim, []);

        var info = new ProcessStartInfo(Path.Combine(app, "simclr"), ["pretrain", "--plain", "--set", "data.name=synthetic-shapes", "--set", "epochs=1",
            "--set", "model.width=0.125", "--set", $"runsFolder={Path.Combine(_folder, "runs")}"]);
        info.Environment["NUGET_PACKAGES"] = Path.Combine(_folder, "no-nuget-cache");
        info.Environment["HOME"] = _folder;
        var (code, output) = SimclrProcess.Run(info, TimeSpan.FromMinutes(2));
        Assert.True(code == 2, $"exit code {code}:\n{output}");
        if (damage == "missing")
        {
            Assert.Contains($"simclr: the native library libLibTorchSharp.so is missing (looked in {native} and {app})", output, StringComparison.Ordinal);
            Assert.Contains("It comes with the TorchSharp package: build again (dotnet build -c Release", output, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains($"simclr: the native library {shim} does not load: ", output, StringComparison.Ordinal);
            Assert.Contains("build again to restore it", output, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("This application or script uses TorchSharp", output, StringComparison.Ordinal); // TorchSharp's page, kept off the screen
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
    }
}
