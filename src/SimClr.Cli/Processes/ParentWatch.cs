using System.Diagnostics;

namespace SimClr.Cli.Processes;

/// <summary>
/// For processes started by `simclr launch`: a token that fires when the launcher is gone (killed with SIGKILL, say),
/// so a worker or coordinator never outlives it as an orphan.
/// </summary>
internal static class ParentWatch
{
    public static CancellationToken Watch(int? parentPid, Action<string> log)
    {
        if (parentPid is not int pid || pid <= 0) return CancellationToken.None;
        var gone = new CancellationTokenSource();
        var thread = new Thread(() =>
        {
            while (true)
            {
                if (!Alive(pid))
                {
                    log($"the launcher (pid {pid}) is gone; stopping");
                    gone.Cancel();
                    return;
                }
                Thread.Sleep(500);
            }
        })
        { IsBackground = true, Name = "parent-watch" };
        thread.Start();
        return gone.Token;
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
