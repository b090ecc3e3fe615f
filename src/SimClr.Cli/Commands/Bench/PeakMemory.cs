using System.Globalization;
using System.Runtime.InteropServices;

namespace SimClr.Cli.Commands.Bench;

/// <summary>
/// The peak resident memory one call adds to this process, on Linux. Before the call: a full .NET collection and glibc's
/// malloc_trim(0), so that memory freed earlier (which the tuned malloc keeps; <see cref="Processes.Allocator"/>) is given
/// back and the call's allocations show in the resident set again; then the kernel's high-water mark is reset by writing
/// 5 to /proc/self/clear_refs. During the call a thread samples the resident set (/proc/self/statm, read without allocating) about every millisecond. The peak is VmHWM after
/// the call where the reset worked (the kernel's own maximum, nothing missed between samples), else the largest sample;
/// the extra is the peak minus VmRSS just before the call. The resident peak can exceed what was live at once: a block
/// freed and the next one malloc'd into another (trimmed) hole leave both resident; so the sampler also reads glibc's
/// mallinfo2, the bytes handed out and not yet freed, whose peak over the call is the live peak (to ~1 ms).
/// </summary>
internal static partial class PeakMemory
{
    /// <summary>The extra resident bytes at the peak (-1: not measured), the extra bytes malloc had handed out at its sampled peak (-1: not measured), and how.</summary>
    public readonly record struct Measurement(long ExtraBytes, long MallocExtraBytes, string Method)
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
        using var statm = File.OpenHandle("/proc/self/statm");
        long sampled = before;
        long inUse0 = InUse(), inUse = inUse0;
        bool done = false;
        void Sample()
        {
            var buffer = new byte[256]; // the only allocation: the samples make no garbage, so no GC heap growth of their own
            while (!Volatile.Read(ref done))
            {
                sampled = Math.Max(sampled, Resident(statm, buffer));
                inUse = Math.Max(inUse, InUse());
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
            + $", minus VmRSS before; after GC{(trimmed ? " and malloc_trim(0)" : "")}; 1 ms samples: RSS +{(sampled - before) / 1048576.0:F1} MiB"
            + (inUse0 >= 0 ? $", malloc'd (mallinfo2) +{(inUse - inUse0) / 1048576.0:F1} MiB" : "");
        return new Measurement(peak - before, inUse0 >= 0 ? inUse - inUse0 : -1, how);
    }

    /// <summary>glibc's mallinfo2 (2.33 and later): the fields, in its order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena, OrdBlks, SmBlks, HBlks, HBlkHd, UsmBlks, FsmBlks, UordBlks, FordBlks, KeepCost;
    }

    /// <summary>Bytes malloc has handed out and not had back, over all arenas (heap + mmapped blocks); -1 without mallinfo2.</summary>
    private static long InUse()
    {
        try
        {
            var info = MallInfo();
            return (long)(info.UordBlks + info.HBlkHd);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
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

    /// <summary>The resident set in bytes from /proc/self/statm (its second field, in pages), read without allocating.</summary>
    private static long Resident(Microsoft.Win32.SafeHandles.SafeFileHandle statm, byte[] buffer)
    {
        int length = RandomAccess.Read(statm, buffer, 0);
        int i = 0;
        while (i < length && buffer[i] != (byte)' ') i++;
        long pages = 0;
        for (i++; i < length && buffer[i] is >= (byte)'0' and <= (byte)'9'; i++) pages = pages * 10 + (buffer[i] - '0');
        return pages * Environment.SystemPageSize;
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

    [LibraryImport("libc", EntryPoint = "mallinfo2")]
    private static partial MallInfo2 MallInfo();

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
