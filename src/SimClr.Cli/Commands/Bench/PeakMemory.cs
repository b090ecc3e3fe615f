using System.Globalization;
using System.Runtime.InteropServices;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// The peak resident memory one call adds to this process, on Linux. Before the call: a full .NET collection and glibc's
/// malloc_trim(0), so that memory freed earlier (which the tuned malloc keeps; <see cref="Processes.Allocator"/>) is given
/// back and the call's allocations show in the resident set again; then the kernel's high-water mark is reset by writing
/// 5 to /proc/self/clear_refs. During the call a thread samples VmRSS about every millisecond. The peak is VmHWM after
/// the call where the reset worked (the kernel's own maximum, nothing missed between samples), else the largest sample;
/// the extra is the peak minus VmRSS just before the call.
/// </summary>
internal static partial class PeakMemory
{
    /// <summary>The extra bytes at the peak (-1: not measured), the sampled peak's extra, and how it was measured.</summary>
    public readonly record struct Measurement(long ExtraBytes, long SampledExtraBytes, string Method)
    {
        /// <summary>"123.4 MiB (how)", or the reason it was not measured.</summary>
        public override string ToString() => ExtraBytes < 0 ? Method : $"{ExtraBytes / 1048576.0:F1} MiB ({Method})";
    }

    /// <summary>Runs <paramref name="call"/> once and measures the resident memory it adds at its peak.</summary>
    public static Measurement Of(Action call)
    {
        if (Status("VmRSS:") < 0)
        {
            call();
            return new Measurement(-1, -1, "not measured: no /proc/self/status here");
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        bool trimmed = Trim();
        bool reset = ResetHighWaterMark();
        long before = Status("VmRSS:");
        long sampled = before;
        bool done = false;
        void Sample()
        {
            while (!Volatile.Read(ref done))
            {
                sampled = Math.Max(sampled, Status("VmRSS:"));
                Thread.Sleep(1);
            }
        }
        var sampler = new Thread(Sample) { IsBackground = true, Name = "rss sampler" };
        sampler.Start();
        call();
        Volatile.Write(ref done, true);
        sampler.Join();
        sampled = Math.Max(sampled, Status("VmRSS:"));
        long peak = reset ? Math.Max(Status("VmHWM:"), sampled) : sampled;
        string how = (reset ? "VmHWM reset through /proc/self/clear_refs" : "VmRSS sampled every ~1 ms (clear_refs refused)")
            + $", minus VmRSS before; after GC{(trimmed ? " and malloc_trim(0)" : "")}; 1 ms samples: +{(sampled - before) / 1048576.0:F1} MiB";
        return new Measurement(peak - before, sampled - before, how);
    }

    /// <summary>A field of /proc/self/status in bytes (VmRSS:, VmHWM:), or -1 where it cannot be read.</summary>
    public static long Status(string field)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return -1;
    }

    /// <summary>Sets VmHWM to the current VmRSS (Linux 4.0 and later); false where the kernel refuses.</summary>
    private static bool ResetHighWaterMark()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>glibc's malloc_trim(0): free heap memory back to the kernel; false without glibc.</summary>
    private static bool Trim()
    {
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
