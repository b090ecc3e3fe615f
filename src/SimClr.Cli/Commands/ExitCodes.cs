using Grpc.Core;
using SimClr.Cli.Processes;
using SimClr.Coordinator;
using SimClr.Core.Collectives;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using SimClr.Protocol;

namespace SimClr.Cli.Commands;

/// <summary>
/// The exit codes of simclr (README, docs/RELIABILITY.md) and the one mapping from an exception to its code and
/// message: a command prints one line for an exception it expects, never a stack trace.
/// </summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>An exception no command expects (a bug): printed whole, stack trace included, as System.CommandLine's own handler prints it.</summary>
    public const int Unexpected = 1;

    /// <summary>The input is refused before anything runs: a config or option value, a file, a data set, a native library; a run directory made for it is removed again.</summary>
    public const int Refused = 2;

    /// <summary>Training diverged: a non-finite loss or gradient once more than faults.maxSkippedSteps allow, or the first one under faults.nonFinite stop.</summary>
    public const int Diverged = 3;

    /// <summary>A worker failed, was lost under fail-fast, disagreed with the others or broke the protocol (the run resumes from its last checkpoint); for the launcher, a worker that did not start.</summary>
    public const int WorkerFailed = 4;

    /// <summary>A checkpoint, metrics.jsonl or the events could not be written (a full disk), after a final checkpoint where one still fits.</summary>
    public const int WriteFailed = 5;

    /// <summary>Stopped by Ctrl-C or SIGTERM after writing a checkpoint (128 + SIGINT, as a shell reports Ctrl-C).</summary>
    public const int Interrupted = 130;

    /// <summary>The exit code and one-line message of an exception the commands expect; null for any other.</summary>
    public static (int Code, string Message)? For(Exception e) => e switch
    {
        ConfigException or DataSetException or InvalidDataException or FileNotFoundException => (Refused, e.Message),
        TrainingDivergedException => (Diverged, e.Message),
        CheckpointWriteException or RunOutputException => (WriteFailed, e.Message),
        RpcException rpc => (WorkerFailed, $"a worker call failed ({rpc.StatusCode}): {rpc.Status.Detail}"),
        WorkerUnavailableException or ReplicaDivergenceException or ReplicaLostException or RingBrokenException or ProtocolViolation => (WorkerFailed, e.Message),
        _ => null,
    };

    /// <summary>
    /// Runs a command's action: an exception <see cref="For"/> knows ends it with "<paramref name="who"/>: message" on
    /// stderr and its code; any other goes on to <see cref="Unhandled"/>.
    /// </summary>
    public static int Run(string who, Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (For(e) is { } failure)
        {
            return Report(who, failure);
        }
    }

    /// <inheritdoc cref="Run(string, Func{int})"/>
    public static async Task<int> RunAsync(string who, Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (For(e) is { } failure)
        {
            return Report(who, failure);
        }
    }

    /// <summary>Prints "<paramref name="who"/>: message" on stderr; returns the code.</summary>
    public static int Report(string who, (int Code, string Message) failure)
    {
        Console.Error.WriteLine($"{who}: {failure.Message}");
        return failure.Code;
    }

    /// <summary>
    /// What no command caught: TorchSharp's native side failing to load is named with what to do (TorchSharp's own
    /// message talks about NuGet packages and Python installs, or is "ArgumentNullException (paths)"); anything else
    /// is printed whole.
    /// </summary>
    public static int Unhandled(Exception e)
    {
        if (NativeTorch.IsLoadFailure(e)) return Report("simclr", (Refused, NativeTorch.Explain(e)));
        Console.Error.WriteLine($"Unhandled exception: {e}"); // as System.CommandLine's own handler prints it
        return Unexpected;
    }
}
