using System.Diagnostics;

namespace SimClr.Cli.Processes;

/// <summary>What this process has used so far, read from /proc/self on Linux.</summary>
internal static class ProcessStats
{
    /// <summary>The process's peak resident set (VmHWM on Linux; the peak working set elsewhere), in bytes.</summary>
    public static long PeakRss()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
        }
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat field 10), or 0 where there is no /proc.</summary>
    public static long MinorFaults()
    {
        if (!File.Exists("/proc/self/stat")) return 0;
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture); // fields from 3 (state) on
    }
}
