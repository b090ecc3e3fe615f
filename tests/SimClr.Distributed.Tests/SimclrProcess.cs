using System.Diagnostics;

namespace SimClr.Distributed.Tests;

/// <summary>Runs the built `simclr` (or any program) to its end, as a user's shell would: exit code and everything it
/// printed, stdout then stderr. A process still running after the limit is killed with its children and fails the test.</summary>
internal static class SimclrProcess
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "simclr");

    public static (int Code, string Output) Run(params string[] args) => Run(new ProcessStartInfo(Executable, args));

    public static (int Code, string Output) Run(ProcessStartInfo info, TimeSpan? limit = null)
    {
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var wait = limit ?? TimeSpan.FromMinutes(3);
        if (!process.WaitForExit(wait))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{Path.GetFileName(info.FileName)} did not finish within {wait.TotalSeconds:0} s: " + stdout.Result + stderr.Result);
        }
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
