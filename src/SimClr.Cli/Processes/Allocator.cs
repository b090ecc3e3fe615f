using System.Runtime.InteropServices;

namespace SimClr.Cli.Processes;

/// <summary>
/// Which malloc simclr runs on. With glibc's defaults a full-width training step maps and unmaps its ~32 MiB activation
/// blocks every step (glibc's dynamic mmap threshold stops at 32 MiB): hundreds of thousands of page faults and about a
/// second of system time per step (BENCHMARKS.md, "Compute per step vs PyTorch"). So, unless the user chose otherwise:
/// this process tunes glibc's malloc with mallopt at start-up (blocks up to 256 MiB come from the heap and freed memory
/// is kept for the next step), and `simclr launch` preloads tcmalloc into the processes it starts when it is installed.
/// SIMCLR_MALLOC=system leaves both alone; SIMCLR_MALLOC=glibc tunes glibc but preloads nothing.
/// </summary>
public static partial class Allocator
{
    /// <summary>The environment variable that chooses: auto (the default), glibc, or system.</summary>
    public const string Variable = "SIMCLR_MALLOC";

    /// <summary>The mallopt parameters (glibc's malloc.h).</summary>
    private const int MTrimThreshold = -1, MTopPad = -2, MMmapThreshold = -3;

    /// <summary>Blocks below this come from the heap, not from their own mmap. Setting it also ends glibc's dynamic threshold.</summary>
    public const int MmapThreshold = 256 << 20;

    /// <summary>Free memory at the top of the heap is given back to the kernel only above this.</summary>
    public const int TrimThreshold = 1 << 30;

    /// <summary>Extra memory asked of the kernel each time the heap grows (and kept when it shrinks).</summary>
    public const int TopPad = 64 << 20;

    public enum Mode
    {
        /// <summary>Tune glibc here; preload tcmalloc into launched processes where it is installed.</summary>
        Auto,

        /// <summary>Tune glibc here and in launched processes; preload nothing.</summary>
        Glibc,

        /// <summary>Leave malloc as the system and the environment make it.</summary>
        System,
    }

    /// <summary>The mode SIMCLR_MALLOC asks for; null for a value that is none of auto, glibc, system.</summary>
    public static Mode? ParseMode(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" or "default" => Mode.Auto,
        "glibc" or "tuned" => Mode.Glibc,
        "system" or "off" or "none" => Mode.System,
        _ => null,
    };

    /// <summary>
    /// Why this process's malloc is to be left as it is (null: tune it): the user opted out, set glibc's own malloc
    /// variables or tunables, or preloads another allocator.
    /// </summary>
    public static string? ReasonToLeaveAlone(IReadOnlyDictionary<string, string> environment)
    {
        environment.TryGetValue(Variable, out string? chosen);
        var mode = ParseMode(chosen);
        if (mode is null) return $"{Variable}={chosen} is not auto, glibc or system";
        if (mode == Mode.System) return $"{Variable}={chosen}";
        string? own = environment.Keys.Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();
        if (own is not null) return $"{own} is set";
        if (environment.TryGetValue("GLIBC_TUNABLES", out string? tunables) && tunables.Contains("glibc.malloc.", StringComparison.Ordinal))
            return "GLIBC_TUNABLES sets glibc.malloc";
        if (environment.TryGetValue("LD_PRELOAD", out string? preload) && PreloadsAllocator(preload))
            return $"LD_PRELOAD={preload}";
        return null;
    }

    /// <summary>Whether an LD_PRELOAD list names a malloc (tcmalloc, jemalloc, mimalloc, tbbmalloc, ...).</summary>
    public static bool PreloadsAllocator(string preload) =>
        preload.Split([':', ' '], StringSplitOptions.RemoveEmptyEntries)
            .Any(p => Path.GetFileName(p) is { } name && (name.Contains("malloc", StringComparison.OrdinalIgnoreCase) || name.Contains("hoard", StringComparison.OrdinalIgnoreCase)));

    /// <summary>
    /// The library to put in LD_PRELOAD of the processes `simclr launch` starts, or null: tcmalloc where SIMCLR_MALLOC
    /// is auto, LD_PRELOAD is unset or empty, no MALLOC_* variable or glibc.malloc tunable says the user tunes glibc's
    /// malloc, and one of <paramref name="candidates"/> exists.
    /// </summary>
    public static string? PreloadForChildren(IReadOnlyDictionary<string, string> environment, IEnumerable<string> candidates, Func<string, bool> exists)
    {
        environment.TryGetValue(Variable, out string? chosen);
        if (ParseMode(chosen) != Mode.Auto) return null;
        if (environment.TryGetValue("LD_PRELOAD", out string? preload) && !string.IsNullOrWhiteSpace(preload)) return null;
        if (ReasonToLeaveAlone(environment) is not null) return null;
        return candidates.FirstOrDefault(exists);
    }

    /// <summary>Where tcmalloc (Debian/Ubuntu libtcmalloc-minimal4, Fedora gperftools-libs, a local build) may be, for this architecture.</summary>
    public static IReadOnlyList<string> TcmallocCandidates()
    {
        string? triplet = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x86_64-linux-gnu",
            Architecture.Arm64 => "aarch64-linux-gnu",
            Architecture.Arm => "arm-linux-gnueabihf",
            Architecture.Ppc64le => "powerpc64le-linux-gnu",
            Architecture.S390x => "s390x-linux-gnu",
            Architecture.RiscV64 => "riscv64-linux-gnu",
            _ => null,
        };
        var folders = new List<string>();
        if (triplet is not null) folders.AddRange([$"/usr/lib/{triplet}", $"/lib/{triplet}"]);
        if (Environment.Is64BitProcess) folders.Add("/usr/lib64");
        folders.AddRange(["/usr/lib", "/usr/local/lib"]);
        return folders.Select(f => Path.Combine(f, "libtcmalloc_minimal.so.4")).ToList();
    }

    /// <summary>The environment of this process as a dictionary.</summary>
    public static IReadOnlyDictionary<string, string> CurrentEnvironment()
    {
        var all = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            all[(string)e.Key] = e.Value as string ?? "";
        return all;
    }

    /// <summary>What <see cref="TuneThisProcess"/> did, in words (for logs).</summary>
    public static string Description { get; private set; } = "not looked at";

    /// <summary>
    /// At start-up, before the first tensor: on Linux with glibc, unless <see cref="ReasonToLeaveAlone"/> says no, raises
    /// glibc's mmap threshold (which also ends its dynamic threshold) and trim threshold and pads the heap's growth, so the
    /// large blocks of a training step are reused from step to step instead of mapped, faulted in and unmapped each time.
    /// </summary>
    public static void TuneThisProcess()
    {
        if (!OperatingSystem.IsLinux())
        {
            Description = "the system's (not Linux)";
            return;
        }
        if (ReasonToLeaveAlone(CurrentEnvironment()) is { } reason)
        {
            Description = $"left alone ({reason})";
            return;
        }
        try
        {
            _ = GnuLibcVersion(); // glibc only: musl and others have no mallopt with these parameters
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            Description = "the system's (not glibc)";
            return;
        }
        bool ok = Mallopt(MMmapThreshold, MmapThreshold) == 1
            & Mallopt(MTrimThreshold, TrimThreshold) == 1
            & Mallopt(MTopPad, TopPad) == 1;
        Description = ok
            ? $"glibc, tuned (mmap threshold {MmapThreshold >> 20} MiB, trim threshold {TrimThreshold >> 20} MiB, top pad {TopPad >> 20} MiB; {Variable}=system for glibc's defaults)"
            : "glibc, mallopt refused a setting (defaults in part)";
    }

    /// <summary>Set in the environment of this process when it has re-executed itself with tcmalloc: never twice.</summary>
    public const string ReexecMarker = "SIMCLR_MALLOC_REEXEC";

    /// <summary>The commands that train in this process, and that re-execute themselves with tcmalloc where it is installed.</summary>
    public static readonly IReadOnlySet<string> TrainingCommands = new HashSet<string>(StringComparer.Ordinal) { "pretrain", "linear-eval", "finetune", "supervised", "quickstart" };

    /// <summary>
    /// The library this process should re-execute itself with in LD_PRELOAD, or null: only for a training command (not
    /// its help), not twice (<see cref="ReexecMarker"/>), and as <see cref="PreloadForChildren"/> decides.
    /// </summary>
    public static string? PreloadForReexec(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> environment, IEnumerable<string> candidates, Func<string, bool> exists)
    {
        if (args.Count == 0 || !TrainingCommands.Contains(args[0])) return null;
        if (args.Any(a => a is "--help" or "-h" or "-?" or "/?" or "/h")) return null;
        if (environment.ContainsKey(ReexecMarker)) return null;
        return PreloadForChildren(environment, candidates, exists);
    }

    /// <summary>
    /// First thing in Main: for a training command on Linux with tcmalloc installed (and neither SIMCLR_MALLOC nor
    /// LD_PRELOAD saying otherwise), replaces this process with the same program, arguments and environment plus
    /// LD_PRELOAD=tcmalloc, by execve(2): the same process id, terminal, standard streams, signals and exit code, since
    /// it is the same process; a program cannot change its malloc once it runs. Returns only where it did not (then
    /// <see cref="TuneThisProcess"/> tunes glibc's malloc instead).
    /// </summary>
    public static void ReexecWithTcmalloc(string[] args)
    {
        if (!OperatingSystem.IsLinux() || System.Diagnostics.Debugger.IsAttached) return;
        var environment = CurrentEnvironment();
        if (PreloadForReexec(args, environment, TcmallocCandidates(), File.Exists) is not { } tcmalloc) return;
        if (!File.Exists("/proc/self/exe") || !File.Exists("/proc/self/cmdline")) return;
        // argv exactly as this process got it (the apphost, or dotnet [host options] simclr.dll), from the kernel
        var argv = File.ReadAllBytes("/proc/self/cmdline").AsSpan().TrimEnd((byte)0).ToArray()
            .Aggregate(new List<List<byte>> { new() }, (all, b) =>
            {
                if (b == 0) all.Add([]);
                else all[^1].Add(b);
                return all;
            })
            .Select(a => a.ToArray()).ToList();
        if (argv.Count == 0) return;
        var variables = environment.Where(e => e.Key != "LD_PRELOAD")
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"LD_PRELOAD={tcmalloc}")
            .Append($"{ReexecMarker}=1")
            .Select(System.Text.Encoding.UTF8.GetBytes).ToList();
        var memory = new List<IntPtr>();
        IntPtr[] Block(List<byte[]> strings)
        {
            var pointers = new IntPtr[strings.Count + 1]; // null-terminated
            for (int i = 0; i < strings.Count; i++)
            {
                pointers[i] = Marshal.AllocHGlobal(strings[i].Length + 1);
                memory.Add(pointers[i]);
                Marshal.Copy(strings[i], 0, pointers[i], strings[i].Length);
                Marshal.WriteByte(pointers[i], strings[i].Length, 0);
            }
            return pointers;
        }
        try
        {
            Console.Out.Flush();
            _ = Execve("/proc/self/exe", Block(argv), Block(variables)); // returns only on failure
            Description = $"execve with tcmalloc failed (errno {Marshal.GetLastPInvokeError()})";
        }
        finally
        {
            foreach (var m in memory) Marshal.FreeHGlobal(m);
        }
    }

    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Execve(string path, IntPtr[] argv, IntPtr[] envp);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int parameter, int value);

    [LibraryImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static partial IntPtr GnuLibcVersion();
}
