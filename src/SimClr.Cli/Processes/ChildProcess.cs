using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SimClr.Cli.Processes;

/// <summary>
/// A process `simclr launch` started: another `simclr` command, in its own session (so a Ctrl-C at the terminal reaches
/// the launcher only, which then stops everything in order), with every output line passed on with a prefix.
/// </summary>
internal sealed partial class ChildProcess : IDisposable
{
    private const int Sigterm = 15;
    private readonly Process _process;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    /// <summary>Completes with the exit code once the process has ended and its output is drained.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>
    /// Starts `simclr &lt;arguments&gt;` (this same program); each line of its stdout and stderr goes to <paramref name="onLine"/>.
    /// <paramref name="environment"/>: variables set for it on top of this process's environment.
    /// </summary>
    public static ChildProcess StartSelf(string name, IEnumerable<string> arguments, Action<ChildProcess, string> onLine,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var (program, prefix) = Self();
        var info = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var all = prefix.Concat(arguments).ToList();
        if (OperatingSystem.IsLinux() && File.Exists("/usr/bin/setsid"))
        {
            info.FileName = "/usr/bin/setsid"; // a new session: the terminal's SIGINT goes to the launcher, not straight to every child
            info.ArgumentList.Add(program);
        }
        else
        {
            info.FileName = program;
        }
        foreach (string a in all) info.ArgumentList.Add(a);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null) onLine(child, e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) onLine(child, e.Data);
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _ = Task.Run(async () =>
        {
            await process.WaitForExitAsync(); // also waits until both output streams are drained
            child._exited.TrySetResult(process.ExitCode);
        });
        return child;
    }

    /// <summary>
    /// The way to run this program again: the apphost (or a single-file publish: the program itself), or `dotnet
    /// simclr.dll`. Never Assembly.Location, which is empty in a single file.
    /// </summary>
    private static (string Program, string[] Prefix) Self()
    {
        string program = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program this is");
        if (Path.GetFileNameWithoutExtension(program) != "dotnet") return (program, []);
        return (program, [Path.Combine(AppContext.BaseDirectory, typeof(ChildProcess).Assembly.GetName().Name + ".dll")]);
    }

    /// <summary>
    /// Asks the process to stop (SIGTERM), as on Ctrl-C: a coordinator writes a checkpoint first. Never SIGINT: a child of
    /// a launcher that a script started in the background inherits SIGINT ignored.
    /// </summary>
    public void Terminate() => Signal(Sigterm);

    private void Signal(int signal)
    {
        if (HasExited) return;
        if (OperatingSystem.IsWindows())
        {
            Kill();
            return;
        }
        _ = SendSignal(_process.Id, signal);
    }

    /// <summary>Ends the process (and anything it started) now.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    /// <summary>Waits up to <paramref name="grace"/> for the process to end after <paramref name="ask"/>, then kills it.</summary>
    public async Task<int> StopAsync(Action ask, TimeSpan grace)
    {
        if (!HasExited)
        {
            ask();
            if (await Task.WhenAny(Exited, Task.Delay(grace)) != Exited) Kill();
        }
        return await Exited;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
