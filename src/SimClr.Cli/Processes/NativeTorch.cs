using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SimClr.Cli.Processes;

/// <summary>
/// When TorchSharp cannot load its native libraries, it fails in its type initializer with a page about NuGet packages
/// and Python installs, or (published to a single file, or with no NuGet cache) with "ArgumentNullException (paths)". This
/// finds which library is missing or does not load, and says what to install or build.
/// </summary>
internal static class NativeTorch
{
    /// <summary>libtorch's libraries in load order, then TorchSharp's shim, which needs them.</summary>
    private static readonly string[] Libraries = ["c10", "torch_cpu", "torch", "LibTorchSharp"];

    /// <summary>The commands that use torch (the others, launch included, never load it).</summary>
    private static readonly HashSet<string> TorchCommands = ["pretrain", "linear-eval", "finetune", "supervised", "quickstart", "export", "worker", "coordinator", "bench", "show-augment"];

    /// <summary>
    /// For a command that uses torch: loads TorchSharp's native side now (its type initializer), with the page TorchSharp
    /// prints to stdout when that fails kept off the screen; null when it loaded, else what <see cref="Explain"/> says.
    /// </summary>
    public static string? LoadFor(string[] args)
    {
        if (args.Length == 0 || !TorchCommands.Contains(args[0])) return null;
        var screen = Console.Out;
        Console.SetOut(TextWriter.Null);
        try
        {
            RuntimeHelpers.RunClassConstructor(typeof(TorchSharp.torch).TypeHandle); // it loads the libraries, and does no other work
            return null;
        }
        catch (Exception e) when (IsLoadFailure(e))
        {
            return Explain(e);
        }
        finally
        {
            Console.SetOut(screen);
        }
    }

    /// <summary>Whether <paramref name="e"/> (or an exception inside it) is TorchSharp failing to load its native side.</summary>
    public static bool IsLoadFailure(Exception e) => Chain(e).Any(x =>
        x is DllNotFoundException || (x is TypeInitializationException t && t.TypeName?.StartsWith("TorchSharp.", StringComparison.Ordinal) == true));

    /// <summary>One message: which library is missing or does not load, and what to do.</summary>
    public static string Explain(Exception e)
    {
        var folders = Folders();
        foreach (string library in Libraries)
        {
            string file = FileName(library);
            string? path = folders.Select(f => Path.Combine(f, file)).FirstOrDefault(File.Exists);
            if (path is null)
            {
                return $"the native library {file} is missing (looked in {string.Join(" and ", folders)}). "
                    + (library == "LibTorchSharp" ? "It comes with the TorchSharp package" : "It comes with the libtorch package (libtorch-cpu-linux-x64, or TorchSharp-cuda-linux for GPUs)")
                    + ": build again (dotnet build -c Release restores and copies it), or publish with a runtime identifier (dotnet publish -r linux-x64) so that runtimes/ is included.";
            }
            try
            {
                NativeLibrary.Free(NativeLibrary.Load(path));
            }
            catch (Exception error) when (error is DllNotFoundException or BadImageFormatException)
            {
                string why = error.Message;
                return $"the native library {path} does not load: {why}"
                    + (why.Contains("GLIBCXX", StringComparison.Ordinal)
                        ? ". This system's libstdc++ is older than TorchSharp's shim needs: install g++ (apt-get install g++) and build again; the build then patches the shim (README, TorchSharp on older Linux)."
                        : ". Check that the build finished and that the file is intact; build again to restore it.");
            }
        }
        var inner = Chain(e).Last();
        return $"TorchSharp could not load its native libraries, although {string.Join(", ", Libraries.Select(FileName))} load from {string.Join(" and ", folders)}: {inner.GetType().Name}: {inner.Message.Split('\n')[0]}";
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
            if (x is AggregateException all)
                foreach (var inner in all.InnerExceptions.SelectMany(Chain)) yield return inner;
        }
    }

    private static string FileName(string library) =>
        OperatingSystem.IsWindows() ? library + ".dll" : OperatingSystem.IsMacOS() ? $"lib{library}.dylib" : $"lib{library}.so";

    /// <summary>Where a build (runtimes/RID/native) or a publish (the app's folder) puts native libraries.</summary>
    private static List<string> Folders()
    {
        string app = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        string os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        string arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        return new[] { RuntimeInformation.RuntimeIdentifier, $"{os}-{arch}" }.Distinct()
            .Select(rid => Path.Combine(app, "runtimes", rid, "native")).Where(Directory.Exists).Append(app).ToList();
    }
}
